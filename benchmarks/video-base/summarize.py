"""Print the README's tables from results/*.json (`experiment.py train` runs).

    python benchmarks/video-base/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# Runs of the sixth session and before that trained the image layers ("unet+text") but whose
# samples were drawn with the untrained ones: `sample_and_score` saved the trained UNet only for
# `--train unet` (fixed in the seventh session). Their x̂0 probes ran on the trained model and stand.
SAMPLED_WITHOUT_TRAINED_UNET = {"ut-s1-600", "ut-s2", "ut-s2-high", "ut-s2-dir3", "ut-s2-first", "ut-s2-left-up",
                                "overfit-s1-unet", "overfit-s2-top", "ut-s2-1500"}


def rows():
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        if "args" not in d:
            continue
        a = d["args"]
        # the first two runs kept one evaluation, at the last step, and no wrong-prompt probe
        for step, r in (d["at"].items() if "at" in d else [(str(a["steps"]), d)]):
            yield path.stem, a, step, r


def main() -> None:
    print("| run | trains | speed | data | t | steps | s | clips | motion | any way | digit | consistency | utility |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, a, step, r in rows():
        s = r["samples"]
        data = f"one digit-{a['one_image']} image" if a.get("one_image", -1) >= 0 else "all digits"
        if a.get("directions"):
            data += f", {a['directions'].replace(',', ' and ')} only"
        t = f"{a['t_high']:.0%} at t≥500, x̂0 loss ≤{a['x0_weight']:g}×" if a.get("t_high") else "uniform"
        trains = a["train"] + "".join(f", {label} ×{a[key]:g}" for key, label in
                                      (("pe_scale", "positions"), ("direction_scale", "direction words"))
                                      if a.get(key, 1.0) != 1.0)
        scores = " | ".join(f"{s[k]:.3f}" for k in ("motion", "motion_any", "digit", "consistency", "utility"))
        if name in SAMPLED_WITHOUT_TRAINED_UNET:
            scores = " | ".join(["(untrained image layers)"] + ["–"] * 4)
        print(f"| {name} | {trains} | {a['speed']} | {data} | {t} | {step} | {r['train_seconds']:.0f} | {s['n']} | "
              f"{scores} |")
    print()
    levels = None
    for name, _, step, r in rows():
        if levels is None:
            levels = list(r["x0_motion"])
            print("| run | steps | " + " | ".join(f"t={t}" for t in levels) + " |")
            print("|---|---|" + "---|" * len(levels))
        wrong = r.get("x0_motion_wrong_prompt")
        cells = [f"{r['x0_motion'][t]['motion']:.2f} / " + (f"{wrong[t]['motion']:.2f}" if wrong else "–")
                 for t in levels]
        print(f"| {name} | {step} | " + " | ".join(cells) + " |")
    words_and_order()


def words_and_order() -> None:
    """Table C, from results/order-and-words.json (`order_and_words.py`)."""
    path = RESULTS / "order-and-words.json"
    if not path.exists():
        return
    print()
    print("| run | speed | digit 7 | right | up | empty | order t=950 | t=800 | t=600 | t=400 | t=200 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in json.loads(path.read_text()).items():
        w = r["words"]["950"]
        print(f"| {name} | {r['speed']} | " + " | ".join(f"{w[k]:.3f}" for k in ("digit 7", "right", "up", "empty"))
              + " | " + " | ".join(f"{v:.2f}" for v in r["order"].values()) + " |")


if __name__ == "__main__":
    main()
