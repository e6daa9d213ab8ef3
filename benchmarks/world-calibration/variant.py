"""A world variant: the shipped world with some pretraining settings changed (issue 16).

The variant's base and strong sibling are pretrained with the changed settings, with new
pairs and a new learned judge built from them. Base, SFT and Diffusion-DPO only (issue 16,
rule 3), at the settings selected on the shipped world (SFT lr 3e-5; DPO lr 1e-4 and 3e-5 at
β 5000), 3 training seeds each, scored on the calibration's noise (seed 1000, 200 images per
model, paired with the base). Results: results/NAME.md and results/NAME.json.

    # a longer-trained base (1,500 steps; its sibling 900 further, as today)
    SEPPO_CACHE=... python benchmarks/world-calibration/variant.py longer pretrain.steps=1500 --out /tmp/longer
    # a wider base (twice the channels at both levels)
    SEPPO_CACHE=... python benchmarks/world-calibration/variant.py wider 'pretrain.unet.block_out_channels=[32,64]' --out /tmp/wider
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

SETTINGS = {"sft-lr3e-5": ["method=sft", "train.lr=3e-5"],
            "dpo-lr1e-4-b5000": ["method=dpo", "train.lr=1e-4", "beta=5000"],
            "dpo-lr3e-5-b5000": ["method=dpo", "train.lr=3e-5", "beta=5000"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name", help="the variant's name: results/NAME.md")
    ap.add_argument("world", nargs="+", help="changed settings, dotted keys: pretrain.steps=1500")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shipped-judge", action="store_true",
                    help="also score with the shipped world's learned judge (a second table)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The shipped config's own text with the world's change (a saved resolved config would fix
    # SePPO's fields, which the other methods may not be given).
    raw = yaml.safe_load(calib.CONFIG.read_text())
    for item in args.world:
        key, value = item.split("=", 1)
        *sections, field = key.split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        node[field] = yaml.safe_load(value)
    world = out / "world.yaml"
    world.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(world)
    t0 = time.time()
    folders = ensure_embedded_base(cfg.pretrain, progress=False)
    _, pair_stats = ensure_pick_a_digit(cfg.pretrain, progress=False)
    judge = ensure_preference_judge(cfg.pretrain, progress=False).meta
    timing = out / "build.json"  # the first build's time, kept when a rerun finds the world cached
    if not timing.is_file():
        timing.write_text(json.dumps({"build_seconds": round(time.time() - t0)}))
    build_seconds = json.loads(timing.read_text())["build_seconds"]
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
    payload = {"world": args.world, "build_seconds": build_seconds, "pairs": pair_stats, "judge": judge,
               "strong": strong, "rows": rows,
               "scores": {k: {j: v for j, v in s.items() if j != "_scores"} for k, s in scores.items()}}
    (calib.HERE / "results").mkdir(exist_ok=True)
    strong_line = ", ".join(f"{j} {strong[j]:.3f}" for j in calib.JUDGES)
    text = f"{table}\n\nstrong sibling: {strong_line}; world built in {build_seconds} s; world: {' '.join(args.world)}\n"
    if args.shipped_judge:  # the same images, the preference column from the shipped world's judge
        shipped = calib.evaluate_models({n: m for n, m in models.items() if n != "strong"}, out / "shipped-judge")
        shipped_rows = calib.seed_level(shipped, "base", groups)
        payload["shipped_judge_rows"] = shipped_rows
        text += f"\nScored with the shipped world's learned judge:\n\n{calib.markdown(shipped_rows, shipped['base'])}\n"
    (calib.HERE / "results" / f"{args.name}.json").write_text(json.dumps(payload, indent=1, default=str))
    (calib.HERE / "results" / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
