"""Is Diffusion-DPO's loss to the base made by classifier-free guidance? (issue 16, diagnosis)

Scores the benchmark's own final runs (base, SFT and Diffusion-DPO, 8 training seeds each,
`seppo benchmark configs/digits-seppo.yaml --out BENCH`) at several guidance scales on the
calibration's evaluation noise (seed 1000, 100 images per model, paired across models), and
reports each arm minus the base with a 95% t-interval over training seeds. Only base, SFT and
DPO are looked at (issue 16, rule 3).

    SEPPO_CACHE=... python benchmarks/world-calibration/guidance.py --bench BENCH --out /tmp/guidance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import calib

JUDGES = ["preference", "oracle", "digit", "stroke"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="a `seppo benchmark --out` folder with runs/ and world.yaml")
    ap.add_argument("--out", default="/tmp/guidance")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--name", default="guidance", help="results/NAME.json and .md")
    args = ap.parse_args()
    bench, out = Path(args.bench), Path(args.out)
    arms = {arm: [f"{arm}-s{s}" for s in range(args.seeds)] for arm in ("sft", "dpo")}
    models = {"base": str(calib.base_folder())} | {n: str(bench / "runs" / n) for names in arms.values() for n in names}
    results = {}
    for g in args.guidance:
        scores = calib.evaluate_models(models, out / f"g{g}", bench / "world.yaml", JUDGES, per_prompt=10, guidance=g)
        rows = calib.seed_level(scores, "base", arms, JUDGES)
        results[g] = {"base": {j: scores["base"][j] for j in JUDGES}} | {row["setting"]: row for row in rows}
    lines = ["| guidance | arm | " + " | ".join(f"{j} (Δ vs base [95% t over seeds], seeds ahead)" for j in JUDGES) + " |",
             "|---" * (len(JUDGES) + 2) + "|"]
    for g, res in results.items():
        lines.append(f"| {g:g} | base | " + " | ".join(f"{res['base'][j]:.3f}" for j in JUDGES) + " |")
        for arm in arms:
            cells = [f"{c['mean']:.3f} ({c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], {c['ahead']}/{args.seeds})"
                     for c in (res[arm][j] for j in JUDGES)]
            lines.append(f"| {g:g} | {arm} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / f"{args.name}.json").write_text(json.dumps({"bench": str(bench), "results": results}, indent=1))
    (calib.HERE / "results" / f"{args.name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
