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
import numpy as np
import torch
from scipy import stats as st

from seppo.embedded.budget import EVAL_STEPS, IMAGE_UNIT
from seppo.evaluate import evaluate
from seppo.prompts import DIGIT_PROMPTS

JUDGES = ["preference", "oracle", "digit", "stroke"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="a `seppo benchmark --out` folder with runs/ and world.yaml")
    ap.add_argument("--out", default="/tmp/guidance")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench, out = Path(args.bench), Path(args.out)
    arms = {"sft": [], "dpo": []}
    models = {"base": str(calib.base_folder())}
    for arm in arms:
        for s in range(args.seeds):
            models[f"{arm}-s{s}"] = str(bench / "runs" / f"{arm}-s{s}")
            arms[arm].append(f"{arm}-s{s}")
    results = {}
    for g in args.guidance:
        cache = out / f"g{g}.json"
        if not cache.is_file():
            r = evaluate(list(models.values()), prompts=list(DIGIT_PROMPTS), judges=JUDGES, names=list(models),
                         judge_paths={"preference": {"config": str(bench / "world.yaml")}}, seeds=calib.EVAL_SEEDS,
                         per_prompt=10, steps=EVAL_STEPS, guidance=g, unit=IMAGE_UNIT, progress=False, n_boot=200)
            means = {n: {j: float(r.scores[r.scores["model"] == n][j].mean()) for j in JUDGES} for n in models}
            out.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(means))
        means = json.loads(cache.read_text())
        results[g] = {"base": means["base"]}
        for arm, names in arms.items():
            row = {}
            for j in JUDGES:
                d = np.array([means[n][j] - means["base"][j] for n in names])
                half = float(st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
                row[j] = {"mean": float(np.mean([means[n][j] for n in names])), "diff": float(d.mean()),
                          "lo": float(d.mean() - half), "hi": float(d.mean() + half), "ahead": int((d > 0).sum())}
            results[g][arm] = row
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
    (calib.HERE / "results" / "guidance.json").write_text(json.dumps({"bench": str(bench), "results": results}, indent=1))
    (calib.HERE / "results" / "guidance.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
