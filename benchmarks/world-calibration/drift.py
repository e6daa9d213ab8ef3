"""How does each method's update move the guided direction? (issue 16, diagnosis of the guidance finding)

For the base and the benchmark's final SFT and Diffusion-DPO runs (8 training seeds each), on
the same noisy real digits (every digit, several timesteps, shared noise), this measures the
conditional prediction ε_c = ε(x_t, "a handwritten digit d"), the unconditional ε_u = ε(x_t, "")
and the guidance direction g = ε_c − ε_u, then per run, against the base (RMS over pixels,
averaged over inputs):

- drift_c = |Δε_c|, drift_u = |Δε_u|, drift_g = |Δg|: how far the update moved each;
- guided_drift = |Δε_u + w·Δg| at the evaluation's w = 3: what sampling sees;
- cos_g: cosine between the run's g and the base's (1: the class direction kept);
- g_norm: |g| itself (the strength of the class signal guidance multiplies).

Only base, SFT and Diffusion-DPO are looked at (issue 16, rule 3).

    SEPPO_CACHE=... python benchmarks/world-calibration/drift.py --bench BENCH
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import calib
import numpy as np
import torch

from seppo.embedded.budget import EVAL_GUIDANCE
from seppo.embedded.digits import digit_prompt, real_digits
from seppo.models import load_for_sampling

TIMESTEPS = [100, 300, 500, 700, 900]
PER_DIGIT = 10


@torch.no_grad()
def predictions(spec: str, x0: torch.Tensor, digits: np.ndarray, t: torch.Tensor, eps: torch.Tensor) -> dict:
    backbone = load_for_sampling(spec)
    scheduler = backbone.scheduler
    x_t = scheduler.add_noise(x0, eps, t)
    cond = backbone.encode_prompts([digit_prompt(int(d)) for d in digits])
    empty = backbone.encode_prompts([""] * len(digits))
    return {"c": backbone.predict(x_t, t, cond), "u": backbone.predict(x_t, t, empty)}


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).pow(2).mean(1).sqrt()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="a `seppo benchmark --out` folder with runs/")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images, labels = real_digits("all")
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.choice(np.flatnonzero(labels == d), PER_DIGIT, replace=False) for d in range(10)])
    n = len(pick) * len(TIMESTEPS)
    x0 = torch.from_numpy(images[pick]).float().unsqueeze(1).repeat(len(TIMESTEPS), 1, 1, 1)  # (n, 1, 16, 16)
    digits = np.tile(labels[pick], len(TIMESTEPS))
    t = torch.tensor(np.repeat(TIMESTEPS, len(pick)))
    eps = torch.from_numpy(rng.standard_normal((n, 1, 16, 16))).float()
    base = predictions(str(calib.base_folder()), x0, digits, t, eps)
    g_base = base["c"] - base["u"]
    w = EVAL_GUIDANCE
    rows = {"base": {"g_norm": float(rms(g_base).mean())}}
    for arm in ("sft", "dpo"):
        per_seed = []
        for s in range(args.seeds):
            p = predictions(str(Path(args.bench) / "runs" / f"{arm}-s{s}"), x0, digits, t, eps)
            g = p["c"] - p["u"]
            dc, du, dg = p["c"] - base["c"], p["u"] - base["u"], g - g_base
            per_seed.append({"drift_c": float(rms(dc).mean()), "drift_u": float(rms(du).mean()),
                             "drift_g": float(rms(dg).mean()), "guided_drift": float(rms(du + w * dg).mean()),
                             "cos_g": float(torch.nn.functional.cosine_similarity(g.flatten(1), g_base.flatten(1)).mean()),
                             "g_norm": float(rms(g).mean())})
        rows[arm] = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
        rows[arm]["seeds"] = per_seed
    lines = ["| model | drift_c | drift_u | drift_g | guided drift (w=3) | cos(g, g_base) | g_norm |", "|---|---|---|---|---|---|---|"]
    lines.append(f"| base | – | – | – | – | 1 | {rows['base']['g_norm']:.4f} |")
    for arm in ("sft", "dpo"):
        r = rows[arm]
        lines.append(f"| {arm} (mean of {args.seeds} seeds) | {r['drift_c']:.4f} | {r['drift_u']:.4f} | {r['drift_g']:.4f} | "
                     f"{r['guided_drift']:.4f} | {r['cos_g']:.4f} | {r['g_norm']:.4f} |")
    table = "\n".join(lines)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "drift.json").write_text(json.dumps({"timesteps": TIMESTEPS, "per_digit": PER_DIGIT,
                                                                    "bench": args.bench, "rows": rows}, indent=1))
    (calib.HERE / "results" / "drift.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
