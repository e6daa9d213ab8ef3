"""Two numbers that explain why a video model ignores the direction word (seventh session).

    SEPPO_CACHE=... PYTHONPATH=src:benchmarks/video-base \
        python benchmarks/video-base/order_and_words.py NAME [NAME ...] [--speed 2]

For each trained video model `$SEPPO_CACHE/video-base-experiments/NAME` (loaded from its folder,
the way samples are drawn):

- **words**: x̂0 of one pure-noise batch (16 clips) at t = 999, 950, 800 under "a handwritten digit
  3 moving left", and how much it changes (mean |Δx̂0| / mean |x̂0|) when the prompt names another
  digit (7), the opposite direction (right), the perpendicular one (up), or nothing.
- **order**: 32 real clips of the judge split (8 digits × 4 directions) noised at t; the model's
  x̂0 of the clip with its frames reversed, against its x̂0 of the clip, reversed:
  |x̂0(Rx) − R x̂0(x)| / |x̂0(x) − its mean over frames|. 0: the model cannot tell frame order, so
  a clip moving left and its reversal (moving right) are the same input to it, and "left" and
  "right" cannot be told apart; 1 and more: frame order matters as much as what differs between
  frames.

Prints a table and writes results/order-and-words.json (merged with earlier runs by name).
"""

from __future__ import annotations

import argparse
import json
import os

import experiment as ex
import numpy as np
import torch

from seppo.embedded.clips import DIRECTIONS, moving_clip
from seppo.embedded.digits import real_digits
from seppo.models import load_for_sampling

WORD_T = (999, 950, 800)
ORDER_T = (950, 800, 600, 400, 200)
OTHERS = {"digit 7": (7, "left"), "right": (3, "right"), "up": (3, "up"), "empty": None}


def x0_hat(backbone, x: torch.Tensor, t: int, prompts: list[str]) -> torch.Tensor:
    tt = torch.full((len(x),), t)
    a = backbone.scheduler.alphas_cumprod[t]
    with torch.no_grad():
        eps = backbone.predict(x, tt, backbone.encode_prompts(prompts))
    return (x - (1 - a).sqrt() * eps) / a.sqrt()  # (B, 1, F, 16, 16), unclipped


def words(backbone) -> dict:
    x = torch.randn((16, 1, 8, 16, 16), generator=torch.Generator().manual_seed(0))
    out = {}
    for t in WORD_T:
        base = x0_hat(backbone, x, t, [ex.PROMPT(3, "left")] * len(x))
        out[str(t)] = {name: float((x0_hat(backbone, x, t, [ex.PROMPT(*cell) if cell else ""] * len(x)) - base)
                                   .abs().mean() / base.abs().mean())
                       for name, cell in OTHERS.items()}
    return out


def order(backbone, speed: int) -> dict:
    images, labels = real_digits("judge")
    clips = [moving_clip(images[i], d, 8, speed, centred=True) for i in range(8) for d in DIRECTIONS]
    prompts = [ex.PROMPT(int(labels[i]), d) for i in range(8) for d in DIRECTIONS]
    x0 = torch.from_numpy(np.stack(clips)).unsqueeze(1)  # (32, 1, 8, 16, 16)
    g, rev, out = torch.Generator().manual_seed(0), torch.arange(7, -1, -1), {}
    for t in ORDER_T:
        x = backbone.scheduler.add_noise(x0, torch.randn(x0.shape, generator=g), torch.full((len(x0),), t))
        a, b = x0_hat(backbone, x, t, prompts), x0_hat(backbone, x[:, :, rev], t, prompts)
        out[str(t)] = float((b - a[:, :, rev]).norm() / (a - a.mean(2, keepdim=True)).norm())
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("names", nargs="+")
    p.add_argument("--speed", type=int, default=2)
    p.add_argument("--root", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = args.root or f"{os.environ.get('SEPPO_CACHE', '/tmp')}/video-base-experiments"
    path = ex.RESULTS / "order-and-words.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in args.names:
        backbone = load_for_sampling(f"{root}/{name}", num_frames=8)
        results[name] = row = {"speed": args.speed, "words": words(backbone), "order": order(backbone, args.speed)}
        w = row["words"]["950"]
        print(f"{name}: words at t=950 " + ", ".join(f"{k} {v:.3f}" for k, v in w.items())
              + " | order " + ", ".join(f"t={t} {v:.2f}" for t, v in row["order"].items()), flush=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
