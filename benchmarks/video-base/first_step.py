"""Is the first guided DDIM step the culprit? At t = 999 the embedded schedule (cosine, trailing
spacing) has sqrt(ᾱ) = 4.9e-5, so an ε-prediction model's x̂0 there is its error × 2·10⁴,
clipped to [−1, 1]: frame-independent garbage that the next step (t = 832, sqrt(ᾱ) = 0.26)
reads as the clip. This samples trained video models with the demo's evaluation sampler (6
steps, guidance 3, the evaluation noise keys, one clip per digit × direction) starting at
t = 999 (as always), 950, 900 or 800, the later steps 166 apart as before.

    SEPPO_CACHE=... PYTHONPATH=src:benchmarks/video-base \
        python benchmarks/video-base/first_step.py $SEPPO_CACHE/video-base-experiments ut-s2 [more runs]

Prints one line per (run, first t) and writes results/first-step.json.
"""

from __future__ import annotations

import json
import sys
import time

import experiment as ex
import numpy as np
import torch

from seppo import sampler
from seppo.embedded.clips import DIRECTIONS, clip_arrays
from seppo.models import eval_seeds, load_for_sampling, sample

STEPS, GAP = 6, 166


def main() -> None:
    torch.set_num_threads(1)
    root, names = sys.argv[1], sys.argv[2:]
    judges, results = ex.judges(), {}
    cells = [(d, r) for d in range(10) for r in DIRECTIONS]
    prompts = [ex.PROMPT(d, r) for d, r in cells]
    for name in names:
        for first in (999, 950, 900, 800):
            backbone = load_for_sampling(f"{root}/{name}", num_frames=8)
            ddim, _ = sampler.ddim_schedule(backbone, STEPS)  # DDIM steps by t − 1000 // STEPS whatever the list
            sampler._SCHEDULES[backbone.scheduler][STEPS] = (ddim, [first - GAP * i for i in range(STEPS)])
            t0 = time.time()
            videos = sample(backbone, prompts, seeds=eval_seeds(0, len(prompts)), resolution=16, steps=STEPS,
                            guidance=3.0, batch_size=40)
            out = ex.score(clip_arrays(videos), np.array([d for d, _ in cells]), [r for _, r in cells], judges)
            results[f"{name}@{first}"] = out
            print(name, first, {k: round(v, 3) for k, v in out.items()}, f"{time.time() - t0:.0f}s", flush=True)
    (ex.RESULTS / "first-step.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
