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
    bench, out = Path(args.bench), Path(args.out)
    models = {"base": str(calib.base_folder())}
    groups: dict[str, list[str]] = {}
    for arm in ("sft", "dpo"):
        for k in args.ks:
            for s in range(args.seeds):
                name = f"{arm}-s{s}-k{k}"
                models[name] = str(snapshot_folder(bench / "runs" / f"{arm}-s{s}", k, out / "models"))
                groups.setdefault(f"{arm}-k{k}", []).append(name)
    scores = calib.evaluate_models(models, out, bench / "world.yaml", JUDGES, per_prompt=10)
    rows = []
    for row in calib.seed_level(scores, "base", groups, JUDGES):
        arm, k = row.pop("setting").rsplit("-k", 1)
        rows.append({"arm": arm, "updates": 20 * int(k), **row})
    base = {j: scores["base"][j] for j in JUDGES}
    lines = ["| arm | updates | " + " | ".join(f"{j} (Δ vs base [95% t over seeds], seeds ahead)" for j in JUDGES) + " |",
             "|---" * (len(JUDGES) + 2) + "|",
             "| base | 0 | " + " | ".join(f"{base[j]:.3f}" for j in JUDGES) + " |"]
    for row in rows:
        cells = [f"{c['mean']:.3f} ({c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], {c['ahead']}/{args.seeds})"
                 for c in (row[j] for j in JUDGES)]
        lines.append(f"| {row['arm']} | {row['updates']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "trajectory.json").write_text(json.dumps({"bench": str(bench), "base": base, "rows": rows},
                                                                       indent=1))
    (calib.HERE / "results" / "trajectory.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
