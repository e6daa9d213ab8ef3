"""How much of the annotator's choices does each Pick-a-Digit judge explain? (issue 16)

The public yardstick (Pick-a-Pic, Kirstain et al., arXiv 2305.01569): on Pick-a-Pic's test
pairs, PickScore agrees with the users' choices 70.2% of the time, zero-shot CLIP-H (prompt
alignment) 60.8%, the LAION aesthetic predictor (prompt-agnostic quality) 56.8%, and people
with each other 68.0%. Real choices are noisy, and no single part of them, neither alignment
nor aesthetics, explains most of them.

This script measures the same three agreements in Pick-a-Digit, on the world's own judge
pairs, for annotators that differ in two settings and nothing else (the images are the
shipped world's; no model is trained or sampled, so no method's score enters):

- λ, the weight of the stroke term (the prompt-agnostic taste) in u = P_annot(d|x) + λ·stroke;
- τ, the annotator's choice noise: side 0 wins with probability σ((u_0 − u_1)/τ) (τ = 0: the
  shipped deterministic annotator, ties within 0.02).

For each: the share of decided pairs where the class-correctness judge `digit` (the CLIP-score
analogue) prefers the winner, the same for the stroke term (the aesthetic-predictor analogue),
and the held-out agreement of a learned Bradley–Terry judge refitted on that annotator's labels
(the PickScore analogue; the shipped fit, `seppo.embedded.preference`).

    SEPPO_CACHE=... python benchmarks/world-calibration/agreement.py
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from calib import CONFIG, HERE

from seppo.config import load_config
from seppo.embedded.judge import load_annotator, load_digit_judge, preference_label
from seppo.embedded.preference import FitSettings, agreement, fit_reward_model, holdout_mask, read_pairs
from seppo.embedded.world import ensure_pick_a_digit

PICK_A_PIC = {"learned": 0.702, "digit": 0.608, "stroke": 0.568}  # PickScore, CLIP-H, aesthetic (arXiv 2305.01569)


def labels(u: np.ndarray, tau: float, seed: int = 0) -> np.ndarray:
    """label_0 of each pair from utilities (P, 2): deterministic with ties at τ = 0, else a
    Bradley–Terry draw (no ties)."""
    if tau == 0:
        return preference_label(u[:, 0], u[:, 1])
    p0 = 1.0 / (1.0 + np.exp(-(u[:, 0] - u[:, 1]) / tau))
    return (np.random.default_rng(seed).random(len(p0)) < p0).astype(np.float64)


def share_agreeing(score: np.ndarray, label_0: np.ndarray) -> float:
    """Share of decided pairs (and score not tied) where the higher score is the winner's."""
    keep = (label_0 != 0.5) & (score[:, 0] != score[:, 1])
    return float(((score[keep, 0] > score[keep, 1]) == (label_0[keep] == 1.0)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.2, 0.5, 1.0, 2.0])
    ap.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.4])
    ap.add_argument("--name", default="agreement")
    args = ap.parse_args()
    world = load_config(CONFIG).pretrain
    parquet, _ = ensure_pick_a_digit(world, split="judge", pairs_per_digit=world.judge_pairs_per_digit)
    pairs = read_pairs(parquet)
    images, digits = pairs["images"], pairs["digits"]
    flat, flat_digits = images.reshape(-1, 16, 16), np.repeat(digits, 2)
    annotator, judge = load_annotator(), load_digit_judge()
    p_annot = annotator.predict_proba(flat)[np.arange(len(flat)), flat_digits].reshape(-1, 2)
    stroke = annotator.stroke(flat, flat_digits).reshape(-1, 2)
    digit = judge.score_arrays(flat, flat_digits).reshape(-1, 2)
    held = holdout_mask(len(digits), FitSettings().seed)
    rows = []
    for lam in args.lambdas:
        for tau in args.taus:
            y = labels(p_annot + lam * stroke, tau)
            model = fit_reward_model(images[~held], digits[~held], y[~held])
            rows.append({"lambda": lam, "tau": tau, "ties": float((y == 0.5).mean()),
                         "digit": share_agreeing(digit, y), "stroke": share_agreeing(stroke, y),
                         "learned": agreement(model, images[held], digits[held], y[held])})
            r = rows[-1]
            print(f"λ {lam:g} τ {tau:g}: ties {r['ties']:.0%}, digit {r['digit']:.1%}, stroke {r['stroke']:.1%}, "
                  f"learned (held out) {r['learned']:.1%}", flush=True)
    for r in rows:  # distance to Pick-a-Pic's three agreements, in percentage points (RMS)
        r["distance_pp"] = float(np.sqrt(np.mean([(100 * (r[k] - v)) ** 2 for k, v in PICK_A_PIC.items()])))
    lines = ["| λ (stroke weight) | τ (choice noise) | ties | digit judge agrees (CLIP-H: 60.8%) | stroke agrees "
             "(aesthetic: 56.8%) | learned judge, held out (PickScore: 70.2%) | RMS distance (pp) |",
             "|---|---|---|---|---|---|---|"]
    best = min(rows, key=lambda r: r["distance_pp"])
    for r in rows:
        cells = (f"{r['lambda']:g} | {r['tau']:g} | {r['ties']:.0%} | {r['digit']:.1%} | {r['stroke']:.1%} | "
                 f"{r['learned']:.1%} | {r['distance_pp']:.1f}")
        lines.append(f"| {'**' + cells.replace(' | ', '** | **') + '**' if r is best else cells} |")
    table = "\n".join(lines)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps({"pairs": str(parquet), "n": len(digits),
                                                                    "pick_a_pic": PICK_A_PIC, "rows": rows}, indent=1))
    (HERE / "results" / f"{args.name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
