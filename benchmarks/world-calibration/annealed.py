"""Would the same 600 pretraining steps give a better-conditioned base if its learning rate
were annealed by step 600? (issue 16, a world lever at no extra cost)

The shipped base is the step-600 snapshot of one 1,500-step run whose cosine schedule spans
all 1,500 steps (the strong sibling is its end), so the base is taken at a high learning rate.
This pretrains a base whose cosine ends at 600 and scores it beside the shipped base and its
strong sibling (digit, oracle, stroke) on the calibration's noise (seed 1000, 100 images each) without guidance and at the evaluation's 3.

    SEPPO_CACHE=... python benchmarks/world-calibration/annealed.py --out /tmp/annealed
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import calib
import torch

from seppo.config import load_config
from seppo.embedded.pretrain import ensure_embedded_base, pretrain

JUDGES = ["digit", "oracle", "stroke"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="/tmp/annealed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(calib.CONFIG).pretrain
    t0 = time.time()
    annealed = pretrain(cfg, Path(args.out), snapshots={"base": cfg.steps}, progress=False)["base"]
    seconds = round(time.time() - t0)
    shipped = ensure_embedded_base(cfg, progress=False)
    models = {"shipped": str(shipped["base"]), "annealed": str(annealed), "strong": str(shipped["strong"])}
    result = {"pretrain_seconds": seconds}
    for g in (1.0, 3.0):
        scores = calib.evaluate_models(models, Path(args.out) / f"eval-g{g}", judges=JUDGES, per_prompt=10, guidance=g)
        result[f"guidance {g:g}"] = {n: {j: round(scores[n][j], 3) for j in JUDGES} for n in models}
    (calib.HERE / "results" / "annealed.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
