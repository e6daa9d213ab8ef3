"""Is guidance 3 the base's own best? (issue 16: the world's evaluation guidance, chosen without any trained model)

Scores the shipped base alone at guidance 2 to 4 on the calibration's noise (seed 1000, 300
images per scale). SD-1.5's 7.5 is the scale where the base looks best; the world's evaluation
scale should be the same kind of choice, made before any method is trained.

    SEPPO_CACHE=... python benchmarks/world-calibration/base_guidance.py --out /tmp/base-guidance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import calib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="/tmp/base-guidance")
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0, 2.5, 3.0, 3.5, 4.0])
    args = ap.parse_args()
    base = str(calib.base_folder())
    results = {}
    for g in args.guidance:
        scores = calib.evaluate_models({"base": base}, Path(args.out) / f"g{g}", guidance=g, per_prompt=30)
        results[g] = {j: scores["base"][j] for j in calib.JUDGES}
        print(g, results[g], flush=True)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "base-guidance.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
