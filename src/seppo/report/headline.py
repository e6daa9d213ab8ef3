"""The answer first: the headline table of a report, every judge with its interval and what
the interval counts, and one sentence, computed from the comparisons, on what the numbers
resolve and what they do not (DESIGN.md §3, rule 4).

| kind          | unit of the interval                                  | a comparison is resolved when            |
|---------------|-------------------------------------------------------|------------------------------------------|
| an evaluation | images (or (prompt, seed) units) of one run per model | its paired win rate's interval excludes ½ |
| a benchmark   | training seeds (the base: its evaluation sets)        | its paired difference's interval excludes 0 |
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from seppo.report.html import esc, table
from seppo.run_dir import RunDir


@dataclass(frozen=True)
class Verdict:
    a: str
    b: str
    judge: str
    resolved: bool
    above: bool  # a scored above b (on average over the units)
    interval: str  # the numbers behind it, for the table

    @property
    def words(self) -> str:
        return f"{self.a} {'above' if self.above else 'below'} {self.b}" if self.resolved else f"{self.a} vs {self.b}"


def comparisons(arms: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs a report states: every model against the base, SePPO against each baseline,
    and each other variant against SePPO; all pairs where there is neither base nor SePPO."""
    pairs = [(a, "base") for a in arms if a != "base" and "base" in arms]
    if "seppo" in arms:
        pairs += [("seppo", b) for b in ("sft", "dpo") if b in arms]
        pairs += [(a, "seppo") for a in arms if a not in ("base", "sft", "dpo", "seppo")]
    return pairs or list(itertools.combinations(arms, 2))


def sentence(verdicts: Sequence[Verdict], *, judge: str, scope: str) -> str:
    """'On J (scope), resolved: a above b, …; not resolved at this budget: c vs d, ….'"""
    mine = [v for v in verdicts if v.judge == judge]
    resolved = [v.words for v in mine if v.resolved]
    open_ = [v.words for v in mine if not v.resolved]
    parts = []
    if resolved:
        parts.append("resolved: " + ", ".join(resolved))
    if open_:
        parts.append(("nothing is resolved at this budget: " if not resolved else "not resolved at this budget: ")
                     + ", ".join(open_))
    if not parts:
        return f"On {judge} ({scope}) there is nothing to compare."
    return f"On {judge} ({scope}), " + "; ".join(parts) + "."


def _verdict_table(verdicts: Sequence[Verdict], interval_header: str) -> str:
    rows = [[esc(f"{v.a} vs {v.b}"), esc(v.judge), esc(v.interval),
             (esc(v.words if v.resolved else "not resolved at this budget"), "resolved" if v.resolved else "unresolved")]
            for v in verdicts]
    return table(["comparison", "judge", interval_header, "verdict"], rows)


def _others(verdicts: Sequence[Verdict], judges: Sequence[str], primary: str) -> str:
    items = []
    for judge in judges:
        if judge == primary or not any(v.judge == judge for v in verdicts):
            continue
        resolved = [v.words for v in verdicts if v.judge == judge and v.resolved]
        items.append(f"<li>{esc(judge)}: {esc(', '.join(resolved)) if resolved else 'nothing resolved'}</li>")
    return f'<p class="note">Resolved on the other judges:</p><ul class="note">{"".join(items)}</ul>' if items else ""


def _header(judge: str, note: str | None) -> str:
    return esc(judge) + (f"<small>{esc(note)}</small>" if note else "")


# ---------------------------------------------------------------- an evaluation (one run per model)


def eval_verdicts(result) -> list[Verdict]:
    """The stated comparisons of an evaluation, from its paired win rates (either orientation)."""
    found = {(p["a"], p["b"], p["judge"]): p for p in result.pairs}
    out = []
    for judge in result.judges:
        for a, b in comparisons(result.models):
            p = found.get((a, b, judge))
            if p is not None:
                win, lo, hi, diff = p["win_rate"], p["lo"], p["hi"], p["mean_diff"]
            elif (b, a, judge) in found:
                q = found[(b, a, judge)]
                win, lo, hi, diff = 1 - q["win_rate"], 1 - q["hi"], 1 - q["lo"], -q["mean_diff"]
            else:
                continue
            out.append(Verdict(a, b, judge, resolved=bool(lo > 0.5 or hi < 0.5), above=win > 0.5,
                               interval=f"win rate {win:.3f} [{lo:.3f}, {hi:.3f}], mean difference {diff:+.4f}"))
    return out


def eval_scope(result) -> str:
    unit = tuple(result.settings.get("unit", ()))
    n = result.summary[0]["n"] if result.summary else 0
    if unit == ("prompt_idx", "seed", "k"):
        return f"one training run per model, {n} images each"
    return f"one training run per model, {n} (prompt, seed) units each"


def eval_headline(result, *, extra: Mapping[str, Mapping[str, str]] | None = None, primary: str | None = None) -> str:
    """Models × judges (mean [95% interval]), what the interval counts, the sentence, and the
    paired comparisons. `extra` adds columns {column: {model: text}} (flip rate, train time)."""
    primary = primary or result.judges[0]
    extra = dict(extra or {})
    cell = {(r["model"], r["judge"]): f"{r['mean']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]" for r in result.summary}
    header = ["model", *(_header(j, result.scales.get(j)) for j in result.judges)]
    if result.diversity:
        header.append(_header("diversity", "mean pairwise distance of digits within a class (no interval)"))
    header += [esc(c) for c in extra]
    rows = []
    for m in result.models:
        row = [esc(m), *(esc(cell.get((m, j), "–")) for j in result.judges)]
        if result.diversity:
            row.append(esc(f"{result.diversity[m]:.2f}") if m in result.diversity else "–")
        rows.append(row + [esc(extra[c].get(m, "–")) for c in extra])
    unit = tuple(result.settings.get("unit", ()))
    counted = ("images: each image is one unit, its noise key shared by every model, so comparisons are paired"
               if unit == ("prompt_idx", "seed", "k") else
               "(prompt, seed) units, the samples of a unit averaged first; units are shared by every model, so "
               "comparisons are paired")
    verdicts = eval_verdicts(result)
    return "\n".join([
        table(header, rows),
        f'<p class="note">Each judge cell: mean [95% bootstrap interval] over {esc(eval_scope(result))}. The interval '
        f"counts {esc(counted)}. It measures image sampling within one training run per model, not training seeds: it "
        "cannot say whether another training seed would rank the models the same way (<code>seppo benchmark</code> "
        "trains several).</p>",
        f'<p class="answer">{esc(sentence(verdicts, judge=primary, scope=eval_scope(result)))}</p>',
        _others(verdicts, result.judges, primary),
        _details_table("Paired comparisons: win rate of the first model over the same images", verdicts,
                       "paired win rate [95% bootstrap] and mean difference"),
    ])


def _details_table(title: str, verdicts: Sequence[Verdict], header: str) -> str:
    if not verdicts:
        return ""
    return f"<details><summary>{esc(title)}</summary>{_verdict_table(verdicts, header)}</details>"


# ---------------------------------------------------------------- a benchmark (training seeds)


def seed_verdicts(paired: Sequence[dict]) -> list[Verdict]:
    out = []
    for r in paired:
        interval = (f"{r['mean_diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}], p {r['p_value']:.3g}, "
                    f"a won {r['wins']}/{r['n']} seeds" if np.isfinite(r["lo"]) else f"{r['mean_diff']:+.4f}")
        out.append(Verdict(r["a"], r["b"], r["judge"], resolved=bool(r["resolved"]), above=r["mean_diff"] > 0,
                           interval=interval))
    return out


def seed_headline(summary: Sequence[dict], paired: Sequence[dict], *, arms: Sequence[str], primary: str,
                  notes: Mapping[str, str], extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Arms × judges at seed level (mean [95% t-interval over training seeds]), the unit of each
    row, the sentence, and the paired differences over seeds with their verdicts."""
    extra = dict(extra or {})
    judges = list(dict.fromkeys(r["judge"] for r in summary))
    cell = {(r["arm"], r["judge"]): r for r in summary}
    header = ["arm", *(_header(j, notes.get(j)) for j in judges), "the interval counts", *(esc(c) for c in extra)]
    rows = []
    for arm in arms:
        first = cell[(arm, judges[0])]
        unit = (f"{first['seeds']} evaluation sets (image sampling only)" if first["unit"].startswith("evaluation")
                else f"{first['seeds']} training seeds")
        values = [cell[(arm, j)] for j in judges]
        rows.append([esc(arm), *(esc(f"{r['mean']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]" if np.isfinite(r["lo"])
                                     else f"{r['mean']:.3f}") for r in values),
                     esc(unit), *(esc(extra[c].get(arm, "–")) for c in extra)])
    seeds = max(r["seeds"] for r in summary)
    verdicts = seed_verdicts(paired)
    scope = f"{seeds} training seeds, runs paired by seed"
    return "\n".join([
        table(header, rows),
        f'<p class="note">Each cell: the mean over {seeds} training seeds of each run\'s mean score [95% t-interval '
        "over the seed means], so the interval counts seed-to-seed variation. The base is untrained: its interval is "
        f"over its {seeds} evaluation sets and counts image sampling only.</p>",
        f'<p class="answer">{esc(sentence(verdicts, judge=primary, scope=scope))}</p>',
        _others(verdicts, judges, primary),
        f"<h3>Paired differences over seeds on {esc(primary)}</h3>",
        _verdict_table([v for v in verdicts if v.judge == primary],
                       "mean difference a − b [95% t-interval over seeds], paired t, seeds a won"),
        _details_table("Paired differences on every judge", verdicts,
                       "mean difference a − b [95% t-interval over seeds], paired t, seeds a won"),
    ])


# ---------------------------------------------------------------- no evaluation


def _mean(rows: Sequence[dict], key: str) -> str:
    values = [m[key] for m in rows if isinstance(m.get(key), (int, float))]
    return f"{np.mean(values):.3f}" if values else "–"


def training_headline(runs: Mapping[str, object]) -> str:
    """What the runs did, when no judge scored them: method, updates, time, and the last
    iteration's mean loss, implicit accuracy and flip rate."""
    rows = []
    for name, run_dir in runs.items():
        run = RunDir(run_dir)
        metrics = run.metrics()
        last = [m for m in metrics if m.get("iteration") == metrics[-1].get("iteration")] if metrics else []
        summary = run.summary() if run.summary_path.is_file() else {}


        method = run.config().method if run.is_run() else "?"
        rows.append([esc(name), esc(method), esc(summary.get("updates", len(metrics))),
                     esc(summary.get("wall_seconds", "–")), *(esc(_mean(last, k)) for k in ("loss", "implicit_acc", "flip_rate"))])
    return "\n".join([
        '<p class="answer">No judge scored these runs, so this report cannot say which model is better. Score them '
        "with <code>seppo eval RUN … --out DIR</code>, then pass <code>--eval DIR</code> to <code>seppo report</code>.</p>",
        table(["run", "method", "updates", "train s", "loss (last iteration)", "implicit accuracy", "flip rate"], rows),
    ])
