"""Does Diffusion-DPO beat the base earlier in its run? (issue 16, diagnosis)

The benchmark's final runs keep θ_k after every iteration (`RUN/pool/theta-k.safetensors`,
k = 1..5: after 20, 40, 60, 80, 100 updates). The learning rate is constant, so θ_k is exactly
what a run of 20·k updates gives. This scores base, SFT and Diffusion-DPO at each k, 8
training seeds each, on the calibration's evaluation noise (seed 1000, 100 images per
model, paired), and reports each minus the base with a 95% t-interval over training seeds.
Only base, SFT and DPO are looked at (issue 16, rule 3).

    SEPPO_CACHE=... python benchmarks/world-calibration/trajectory.py --bench BENCH --out /tmp/trajectory
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import calib
import numpy as np
import torch
from scipy import stats as st

from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS, IMAGE_UNIT
from seppo.evaluate import evaluate
from seppo.prompts import DIGIT_PROMPTS

JUDGES = ["preference", "oracle", "digit", "stroke"]


def snapshot_folder(run: Path, k: int, out: Path) -> Path:
    """A model folder for θ_k of `run`: its final export with the UNet weights of pool/theta-k."""
    folder = out / f"{run.name}-k{k}"
    if not (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        shutil.copytree(run / "final", folder, dirs_exist_ok=True)
        shutil.copy2(run / "pool" / f"theta-{k}.safetensors", folder / "unet" / "diffusion_pytorch_model.safetensors")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", required=True, help="a `seppo benchmark --out` folder with runs/ and world.yaml")
    ap.add_argument("--out", default="/tmp/trajectory")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench, out = Path(args.bench), Path(args.out)
    models = {"base": str(calib.base_folder())}
    groups: dict[tuple[str, int], list[str]] = {}
    for arm in ("sft", "dpo"):
        for k in args.ks:
            for s in range(args.seeds):
                name = f"{arm}-s{s}-k{k}"
                models[name] = str(snapshot_folder(bench / "runs" / f"{arm}-s{s}", k, out / "models"))
                groups.setdefault((arm, k), []).append(name)
    cache = out / "means.json"
    means = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [n for n in models if n not in means]
    if todo:
        r = evaluate([models[n] for n in todo], prompts=list(DIGIT_PROMPTS), judges=JUDGES, names=todo,
                     judge_paths={"preference": {"config": str(bench / "world.yaml")}}, seeds=calib.EVAL_SEEDS,
                     per_prompt=10, steps=EVAL_STEPS, guidance=EVAL_GUIDANCE, unit=IMAGE_UNIT, progress=False, n_boot=200)
        for n in todo:
            means[n] = {j: float(r.scores[r.scores["model"] == n][j].mean()) for j in JUDGES}
        cache.write_text(json.dumps(means))
    rows = []
    for (arm, k), names in groups.items():
        row = {"arm": arm, "updates": 20 * k}
        for j in JUDGES:
            d = np.array([means[n][j] - means["base"][j] for n in names])
            half = float(st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
            row[j] = {"mean": float(np.mean([means[n][j] for n in names])), "diff": float(d.mean()),
                      "lo": float(d.mean() - half), "hi": float(d.mean() + half), "ahead": int((d > 0).sum())}
        rows.append(row)
    lines = ["| arm | updates | " + " | ".join(f"{j} (Δ vs base [95% t over seeds], seeds ahead)" for j in JUDGES) + " |",
             "|---" * (len(JUDGES) + 2) + "|",
             "| base | 0 | " + " | ".join(f"{means['base'][j]:.3f}" for j in JUDGES) + " |"]
    for row in rows:
        cells = [f"{c['mean']:.3f} ({c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], {c['ahead']}/{args.seeds})"
                 for c in (row[j] for j in JUDGES)]
        lines.append(f"| {row['arm']} | {row['updates']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "trajectory.json").write_text(json.dumps({"bench": str(bench), "base": means["base"],
                                                                        "rows": rows}, indent=1))
    (calib.HERE / "results" / "trajectory.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
