"""Print the README's tables from results/*.json (`experiment.py train` runs).

    python benchmarks/video-base/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


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
        t = f"{a['t_high']:.0%} at t≥500, x̂0 loss ≤{a['x0_weight']:g}×" if a.get("t_high") else "uniform"
        print(f"| {name} | {a['train']} | {a['speed']} | {data} | {t} | {step} | {r['train_seconds']:.0f} | {s['n']} | "
              f"{s['motion']:.3f} | {s['motion_any']:.3f} | {s['digit']:.3f} | {s['consistency']:.3f} | "
              f"{s['utility']:.3f} |")
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


if __name__ == "__main__":
    main()
