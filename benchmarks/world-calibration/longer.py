"""A better-conditioned base: pretrain it longer (issue 16, the lever the guidance diagnosis points to).

The world's base becomes the 1,500-step model (the shipped world's strong sibling; its own
strong sibling trains 900 steps further, as today), with new pairs and a new learned judge
built from it. Base, SFT and Diffusion-DPO only (issue 16, rule 3), at the settings selected
on the shipped world (SFT lr 3e-5; DPO lr 1e-4 and 3e-5 at β 5000), 3 training seeds each,
scored on the calibration's noise (seed 1000, 100 images per model, paired with the base).

    SEPPO_CACHE=... python benchmarks/world-calibration/longer.py --out /tmp/longer
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import calib
import yaml

from seppo.config import load_config
from seppo.embedded.preference import ensure_preference_judge
from seppo.embedded.pretrain import ensure_embedded_base
from seppo.embedded.world import ensure_pick_a_digit

WORLD = ["pretrain.steps=1500"]  # strong_extra_steps stays 900: strong at 2,400
SETTINGS = {"sft-lr3e-5": ["method=sft", "train.lr=3e-5"],
            "dpo-lr1e-4-b5000": ["method=dpo", "train.lr=1e-4", "beta=5000"],
            "dpo-lr3e-5-b5000": ["method=dpo", "train.lr=3e-5", "beta=5000"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="/tmp/longer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The shipped config's own text with the world's change (a saved resolved config would fix
    # SePPO's fields, which the other methods may not be given).
    raw = yaml.safe_load(calib.CONFIG.read_text())
    for item in WORLD:
        key, value = item.split("=")
        section, field = key.split(".")
        raw[section][field] = yaml.safe_load(value)
    world = out / "world.yaml"
    world.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(world)
    t0 = time.time()
    folders = ensure_embedded_base(cfg.pretrain, progress=False)
    _, pair_stats = ensure_pick_a_digit(cfg.pretrain, progress=False)
    judge = ensure_preference_judge(cfg.pretrain, progress=False).meta
    build_seconds = round(time.time() - t0)
    print(f"world built in {build_seconds} s; judge agreement {judge['heldout_agreement']:.3f}", flush=True)
    jobs, groups = [], {}
    for name, overrides in SETTINGS.items():
        for seed in args.seeds:
            run = out / "runs" / f"{name}-s{seed}"
            jobs.append((run, [*overrides, f"seed={seed}"]))
            groups.setdefault(name, []).append(run.name)
    runs = calib.train_many(jobs, config=world)
    models = {"base": str(folders["base"]), "strong": str(folders["strong"])} | {r.name: str(r) for r in runs}
    scores = calib.evaluate_models(models, out, world_config=world)
    rows = calib.seed_level(scores, "base", groups)
    table = calib.markdown(rows, scores["base"])
    strong = {j: scores["strong"][j] for j in calib.JUDGES}
    payload = {"world": WORLD, "build_seconds": build_seconds, "pairs": pair_stats, "judge": judge,
               "strong": strong, "rows": rows,
               "scores": {k: {j: v for j, v in s.items() if j != "_scores"} for k, s in scores.items()}}
    (calib.HERE / "results").mkdir(exist_ok=True)
    (calib.HERE / "results" / "longer.json").write_text(json.dumps(payload, indent=1, default=str))
    (calib.HERE / "results" / "longer.md").write_text(table + "\n")
    print(table)
    print("strong:", strong)


if __name__ == "__main__":
    main()
