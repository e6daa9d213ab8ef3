"""The benchmark's tables, plots and files, with the training run as the unit (DESIGN.md §3).

| quantity            | how it is computed                                                    |
|---------------------|-----------------------------------------------------------------------|
| m_{a,s}             | arm a, training seed s: the run's mean score over its evaluation images |
| arm score           | mean over seeds of m_{a,s}, 95% t-interval over the S seed means       |
| two-level interval  | bootstrap resampling seeds, then images within a seed (JSON only)     |
| paired difference   | d_s = m_{a,s} − m_{b,s} (same seed, base, data order, images); t-interval, paired-t p |
| within-run precision | image-level bootstrap of seed 0's images: one run's precision only   |
| guidance-aware table | the same, every arm sampled at its own scale (chosen on validation keys) |

The untrained base has no training seed: its "seeds" are the S evaluation sets, so its
interval counts image sampling only, and it is labelled so. A difference whose interval
covers 0 is written "not resolved at this budget".
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from seppo.run_dir import RunDir
from seppo.stats import bootstrap_ci, paired_seed_difference, t_interval, two_level_bootstrap

# Judges' meaning, for the table's header. The oracle exists only in a simulation.
JUDGE_NOTES = {
    "preference": "learned preference judge (Bradley–Terry on held-out annotator pairs; the PickScore of Pick-a-Digit)",
    "oracle": "the annotator's own utility — the simulation's oracle, which real data lacks",
    "digit": "class correctness, P(prompted digit | x) (the CLIP-score analogue)",
    "stroke": "the stroke-weight term of the annotator's taste",
    "diversity": "mean pairwise distance of digits within a class",
    "video-prompt": "½ per-frame class correctness + ½ motion judge: the prompt's two asks from public judges (the video selection judge)",
    "video-oracle": "the video annotator's own utility — the simulation's oracle, which real data lacks",
    "video-digit": "class correctness, mean over the frames (aligned to the first one)",
    "motion": "share of frame steps moving the prompted way (phase correlation)",
    "consistency": "mean cosine similarity of consecutive frames",
}


def seed_means(scores: pd.DataFrame, judges: Sequence[str]) -> pd.DataFrame:
    """m_{a,s}: one row per (arm, train_seed), one column per judge (and diversity)."""
    columns = [*judges, *(["diversity"] if "diversity" in scores else [])]
    return scores.groupby(["arm", "train_seed"], sort=False)[columns].mean()


def arm_summary(scores: pd.DataFrame, judges: Sequence[str], arms: Sequence[str]) -> list[dict]:
    means = seed_means(scores, judges)
    rows = []
    for arm in arms:
        per_seed = means.loc[arm]
        seed0 = scores[(scores["arm"] == arm) & (scores["train_seed"] == scores["train_seed"].min())]
        for judge in means.columns:
            mean, lo, hi = t_interval(per_seed[judge].to_numpy())
            row = {"arm": arm, "judge": judge, "mean": mean, "lo": lo, "hi": hi, "seeds": int(len(per_seed)),
                   "unit": "evaluation sets (untrained)" if arm == "base" else "training seeds",
                   "seed_means": [float(v) for v in per_seed[judge]]}
            if judge != "diversity":
                groups = [g[judge].to_numpy() for _, g in scores[scores["arm"] == arm].groupby("train_seed")]
                row["two_level"] = list(two_level_bootstrap(groups)[1:])
                row["within_run_seed0"] = list(bootstrap_ci(seed0[judge].to_numpy())[1:])
            rows.append(row)
    return rows


def comparisons(arms: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs the benchmark reports: every arm against the base, SePPO against each
    baseline, and each ablation arm against SePPO."""
    pairs = [(a, "base") for a in arms if a != "base" and "base" in arms]
    if "seppo" in arms:
        pairs += [("seppo", b) for b in ("sft", "dpo") if b in arms]
        pairs += [(a, "seppo") for a in arms if a not in ("base", "sft", "dpo", "seppo")]
    return pairs


def paired_summary(scores: pd.DataFrame, judges: Sequence[str], arms: Sequence[str]) -> list[dict]:
    means = seed_means(scores, judges)
    rows = []
    for a, b in comparisons(arms):
        for judge in means.columns:
            result = paired_seed_difference(means.loc[a][judge].to_numpy(), means.loc[b][judge].to_numpy())
            rows.append({"a": a, "b": b, "judge": judge, **result})
    return rows


def _cell(row: dict) -> str:
    if not np.isfinite(row["lo"]):
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def verdict(row: dict) -> str:
    if not row["resolved"]:
        return "not resolved at this budget"
    return f"{row['a']} {'above' if row['mean_diff'] > 0 else 'below'} {row['b']}"


def markdown(summary: list[dict], paired: list[dict], *, arms: Sequence[str], judges: Sequence[str], extra: dict,
             header: str) -> str:
    columns = list(dict.fromkeys(r["judge"] for r in summary))
    cell = {(r["arm"], r["judge"]): _cell(r) for r in summary}
    seeds = {r["arm"]: r["seeds"] for r in summary}
    lines = [header, "", "| arm | " + " | ".join(columns) + " | " + " | ".join(extra) + " |",
             "|---" * (len(columns) + len(extra) + 1) + "|"]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(cell[(arm, j)] for j in columns) + " | "
                     + " | ".join(str(extra[c].get(arm, "–")) for c in extra) + " |")
    n = max(seeds.values())
    lines += ["", f"Each cell: mean over {n} training seeds of each run's mean score [95% t-interval over the "
              f"seed means]. The base is untrained: its interval is over its {n} evaluation sets (image "
              "sampling only). Judges: " + "; ".join(f"`{j}` = {JUDGE_NOTES.get(j, j)}" for j in columns) + ".", "",
              "| a − b | judge | mean difference [95% t-interval over seeds] | p (paired t) | seeds a won | verdict |",
              "|---|---|---|---|---|---|"]
    for r in paired:
        interval = (f"{r['mean_diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]" if np.isfinite(r["lo"])
                    else f"{r['mean_diff']:+.4f}")
        lines.append(f"| {r['a']} − {r['b']} | {r['judge']} | {interval} | {r['p_value']:.3g} | "
                     f"{r['wins']}/{r['n']} | {verdict(r)} |")
    return "\n".join(lines) + "\n"


def tuning_markdown(grid: pd.DataFrame, selected: dict, judge: str) -> str:
    if grid.empty:
        return "No tuning: every arm ran at the config's own settings.\n"
    lines = [f"Validation score: mean `{judge}` over the tuning seeds, on validation noise keys the final "
             "evaluation never uses.", "", "| method | lr | β | validation score (per seed) | selected |",
             "|---|---|---|---|---|"]
    for method, rows in grid.groupby("method", sort=False):
        settings = [s for s in ("train.lr", "beta") if s in rows and rows[s].notna().any()]
        for point, g in rows.groupby(settings, sort=True):
            point = point if isinstance(point, tuple) else (point,)
            p = dict(zip(settings, point))
            chosen = all(selected[method].get(k) == v for k, v in p.items())
            beta = f"{p['beta']:g}" if "beta" in p else "–"
            lines.append(f"| {method} | {p['train.lr']:g} | {beta} | {g['score'].mean():.4f} "
                         f"({', '.join(f'{v:.4f}' for v in g['score'])}) | {'**yes**' if chosen else ''} |")
    return "\n".join(lines) + "\n"


def guidance_markdown(grid: pd.DataFrame, arm_guidance: dict[str, float], judge: str) -> str:
    """The validation score of each model family at each scale (`grid`: model, run, guidance,
    score, selected), the chosen one in bold, and which scale every arm was evaluated at."""
    scales = sorted(set(grid["guidance"]))
    lines = [f"Validation score: mean `{judge}` on the validation keys (the base; each tuned method's tuning runs "
             "at its selected point, per run in brackets). The final runs are never looked at.", "",
             "| model | " + " | ".join(f"guidance {g:g}" for g in scales) + " |", "|---" * (len(scales) + 1) + "|"]
    for family, rows in grid.groupby("model", sort=False):
        cells = []
        for g in scales:
            at = rows[rows["guidance"] == g]
            text = f"{at['score'].mean():.4f}" + (f" ({', '.join(f'{v:.4f}' for v in at['score'])})" if len(at) > 1 else "")
            cells.append(f"**{text}**" if at["selected"].all() else text)
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines += ["", "Scale each arm is evaluated at: " + ", ".join(f"{a} {g:g}" for a, g in arm_guidance.items())
              + " (ablation arms take SePPO's)."]
    return "\n".join(lines) + "\n"


def plot_arms(summary: list[dict], arms: Sequence[str], path: Path) -> None:
    judges = list(dict.fromkeys(r["judge"] for r in summary))
    fig = Figure(figsize=(3.2 * len(judges) + 1, 3.8), constrained_layout=True)
    axes = fig.subplots(1, len(judges), squeeze=False)
    for ax, judge in zip(axes[0], judges):
        rows = [next(r for r in summary if r["arm"] == a and r["judge"] == judge) for a in arms]
        x = np.arange(len(rows))
        lo = [r["mean"] - r["lo"] if np.isfinite(r["lo"]) else 0 for r in rows]
        hi = [r["hi"] - r["mean"] if np.isfinite(r["hi"]) else 0 for r in rows]
        ax.bar(x, [r["mean"] for r in rows], yerr=[lo, hi], capsize=3, color="tab:blue", alpha=0.6)
        for i, r in enumerate(rows):
            ax.scatter(np.full(len(r["seed_means"]), i), r["seed_means"], s=8, color="black", zorder=3)
        ax.set_xticks(x, [r["arm"] for r in rows], rotation=50, ha="right")
        ax.set_title(judge)
        ax.grid(axis="y", alpha=0.3)
        values = [v for r in rows for v in r["seed_means"]]
        span = max(values) - min(values) or 1.0
        ax.set_ylim(min(values) - 0.3 * span, max(values) + 0.3 * span)
    fig.suptitle("mean over training seeds (bars), 95% t-interval, one dot per seed")
    fig.savefig(path, dpi=100)


def plot_tuning(grid: pd.DataFrame, selected: dict, path: Path) -> None:
    methods = list(dict.fromkeys(grid["method"]))
    fig = Figure(figsize=(4 * len(methods), 3.4), constrained_layout=True)
    axes = fig.subplots(1, len(methods), squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = grid[grid["method"] == method]
        groups = rows.groupby("beta") if "beta" in rows and rows["beta"].notna().any() else [(None, rows)]
        for beta, g in groups:
            mean = g.groupby("train.lr")["score"].mean()
            ax.plot(mean.index, mean.values, marker="o", label="—" if beta is None else f"β={beta:g}")
            ax.scatter(g["train.lr"], g["score"], s=8, color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        chosen = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in selected[method].items())
        ax.set_title(f"{method} (selected {chosen})", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def write_outputs(out: Path, *, scores: pd.DataFrame, runs: dict, selected: dict, grid: pd.DataFrame, plan,
                  config: str, overrides: list, timing: dict, keys: dict, world: dict, guided: dict | None = None) -> Path:
    """benchmark.md, benchmark.json, selected.yaml, scores.parquet, benchmark.png, tuning.png; with
    `guided` (every arm at its own scale: scores, arms' scales, validation grid) the guidance-aware
    table too, and scores-guided.parquet, benchmark-guided.png."""
    arms = [a for a in plan.arms if a in set(scores["arm"])]
    judges = [j for j in plan.judges if j in scores]
    summary = arm_summary(scores, judges, arms)
    paired = paired_summary(scores, judges, arms)
    extra = {"final flip rate": {}, "train s": {}}
    for arm, dirs in runs.items():
        flips, walls = [], []
        for d in dirs:
            rows = RunDir(d).metrics()
            last = [r["flip_rate"] for r in rows if "flip_rate" in r and r["iteration"] == rows[-1]["iteration"]]
            flips += [sum(last) / len(last)] if last else []
            walls.append(RunDir(d).summary().get("wall_seconds", float("nan")))
        extra["final flip rate"][arm] = f"{np.mean(flips):.2f}" if flips else "–"
        extra["train s"][arm] = f"{np.mean(walls):.0f}"
    unit = world.get("unit", "images")
    header = (f"# Benchmark\n\nconfig `{config}`, overrides `{' '.join(overrides) or '(none)'}`; {plan.seeds} "
              f"training seeds per arm; same updates ({world['updates']}) and examples seen "
              f"({world['examples_seen']}) for every arm; {keys['final']} final evaluation {unit} in all "
              f"({keys['final'] // plan.seeds} per seed set, {plan.seeds} seed sets), "
              f"{keys['validation']} validation {unit} per tuning run (disjoint noise keys).")
    text = markdown(summary, paired, arms=arms, judges=judges, extra=extra, header=header)
    text += "\n## Selected settings\n\n" + tuning_markdown(grid, selected, plan.select_judge)
    text += ("\nThe ablation arms (indicator, no flipper, initial, latest, spin, ditto) use SePPO's selected "
             "settings.\n")
    guided_json = None
    if guided is not None:
        g_summary = arm_summary(guided["scores"], judges, arms)
        g_paired = paired_summary(guided["scores"], judges, arms)
        shared = plan.eval_guidance
        text += markdown(g_summary, g_paired, arms=arms, judges=judges,
                         extra={"guidance": {a: f"{guided['arms'][a]:g}" for a in arms}},
                         header=f"\n## Every arm at its own guidance scale\n\nThe table above samples every arm at "
                                f"guidance {shared:g}, the base's own best. An update can act like more guidance, and a "
                                "judge then rewards the scale rather than the method (GA-Eval, arXiv 2602.22570); here "
                                "each arm is sampled at its own scale, chosen on validation keys, on the same final keys.")
        text += "\n### Guidance selected on validation keys\n\n" + guidance_markdown(guided["grid"], guided["arms"],
                                                                                     plan.select_judge)
        guided_json = {"arms": guided["arms"], "grid": guided["grid"].to_dict(orient="records"), "summary": g_summary,
                       "paired": g_paired}
    text += f"\nTiming: {json.dumps(timing)}\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.md").write_text(text)
    (out / "selected.yaml").write_text(yaml.safe_dump({m: {k: float(v) for k, v in p.items()}
                                                       for m, p in selected.items()}, sort_keys=False))
    (out / "benchmark.json").write_text(json.dumps({
        "config": config, "overrides": overrides, "plan": asdict(plan), "selected": selected,
        "grid": grid.to_dict(orient="records"), "summary": summary, "paired": paired, "timing": timing,
        "keys": keys, "world": world, "extra": extra, "guided": guided_json}, indent=1, default=float))
    scores.to_parquet(out / "scores.parquet", index=False)
    plot_arms(summary, arms, out / "benchmark.png")
    if guided is not None:
        guided["scores"].to_parquet(out / "scores-guided.parquet", index=False)
        plot_arms(guided_json["summary"], arms, out / "benchmark-guided.png")
    if not grid.empty:
        plot_tuning(grid, selected, out / "tuning.png")
    return out / "benchmark.md"
