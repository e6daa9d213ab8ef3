"""Training curves: one row of panels per run, only the metrics that run's method logs, with
the axes of each metric shared by every run that logs it.

A panel appears where the metric it needs was logged with finite values; the reference
drawn and the learning rate only where they change. A column holds one quantity, so its y
axis is shared: SFT's loss is e_θ(x^w) and is drawn under "errors on winners", beside the
other methods' e_θ(x^w), not under the preference loss −log σ(z). DPO logs the preference
loss, implicit accuracy, the logit and the errors on winners and losers; SePPO and its
presets the errors on reference samples and the flip rate instead of losers (seppo.losses).
Rows of runs that log less leave those cells blank, never an empty plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seppo.run_dir import RunDir

# (panel title, metrics drawn in it, the metric it needs logged to show)
PANELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("loss −log σ(z)", ("loss",), "logit"),
    ("implicit accuracy", ("implicit_acc",), "implicit_acc"),
    ("flip rate", ("flip_rate",), "flip_rate"),
    ("logit z", ("logit",), "logit"),
    ("errors on winners e(x^w)", ("policy_err_w", "ref_err_w"), "policy_err_w"),
    ("errors on reference samples", ("policy_err_ref", "ref_err_ref"), "policy_err_ref"),
    ("errors on losers e(x^l)", ("policy_err_l", "ref_err_l"), "policy_err_l"),
    ("reference drawn (j)", ("reference",), "reference"),
    ("learning rate", ("lr",), "lr"),
)
CHANGING_ONLY = {"reference", "lr"}  # shown only where they change over the run
LABELS = {"policy_err_w": "e_θ", "ref_err_w": "e_ref", "policy_err_ref": "e_θ", "ref_err_ref": "e_ref",
          "policy_err_l": "e_θ", "ref_err_l": "e_ref"}


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """`metrics.jsonl` as a table, one row per logged update (empty if absent)."""
    return pd.DataFrame(RunDir(run_dir).metrics())


def _finite(metrics: pd.DataFrame, key: str) -> pd.Series:
    if key not in metrics:
        return pd.Series(dtype=float)
    return pd.to_numeric(metrics[key], errors="coerce").dropna()


def logged_panels(metrics: pd.DataFrame) -> list[str]:
    """Titles of the panels this run's metrics fill, in PANELS order."""
    shown = []
    for title, _, needs in PANELS:
        values = _finite(metrics, needs)
        if values.empty or not np.isfinite(values).any():
            continue
        if needs in CHANGING_ONLY and values.nunique() < 2:
            continue
        shown.append(title)
    return shown


def curves_figure(runs: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Rows: runs; columns: every panel some run fills. None when no run logged anything."""
    panels = {name: logged_panels(m) for name, m in runs.items()}
    columns = [title for title, _, _ in PANELS if any(title in p for p in panels.values())]
    names = [n for n in runs if panels[n]]
    if not columns or not names:
        return None
    keys = {title: drawn for title, drawn, _ in PANELS}
    fig = Figure(figsize=(max(3.0 * len(columns), 6.0), 2.3 * len(names) + 0.4), constrained_layout=True)
    axes = fig.subplots(len(names), len(columns), squeeze=False, sharey="col")  # one quantity per column
    x_max = max(float(runs[n]["step"].max()) for n in names)
    for r, name in enumerate(names):
        metrics = runs[name]
        for c, title in enumerate(columns):
            ax = axes[r][c]
            if title not in panels[name]:
                ax.set_visible(False)  # this method does not log it: a blank cell, not an empty plot
                continue
            for i, key in enumerate(keys[title]):
                values = _finite(metrics, key)
                if values.empty:
                    continue
                _line(ax, metrics.loc[values.index, "step"].to_numpy(), values.to_numpy(), f"C{i}",
                      LABELS.get(key), step=key == "reference")
            if len(keys[title]) > 1:
                ax.legend(fontsize=7, loc="best")
            ax.set_title(title if r == 0 or title not in panels[names[r - 1]] else "", fontsize=10)
            ax.set_xlim(0, x_max)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.set_xlabel("update", fontsize=8)
        first = next(c for c, t in enumerate(columns) if t in panels[name])
        axes[r][first].set_ylabel(name, fontsize=11, fontweight="bold")
    return fig


def _line(ax, x: np.ndarray, y: np.ndarray, color: str, label: str | None, *, step: bool) -> None:
    """The raw values, faint, and a running mean over a twentieth of the run where it is long."""
    if step:
        ax.step(x, y, where="post", color=color, lw=1.2, label=label)
        return
    window = max(1, len(y) // 20)
    if window > 1:
        ax.plot(x, y, color=color, lw=0.8, alpha=0.3)
        ax.plot(x, pd.Series(y).rolling(window, min_periods=1).mean().to_numpy(), color=color, lw=1.6, label=label)
    else:
        ax.plot(x, y, color=color, lw=1.4, marker="." if len(y) < 10 else None, label=label)


def curves_caption(runs: Mapping[str, pd.DataFrame]) -> str:
    """Which metrics each run logs, in words (the figure shows only these)."""
    parts = []
    for name, metrics in runs.items():
        panels = logged_panels(metrics)
        parts.append(f"{name}: {', '.join(panels) if panels else 'nothing logged'}")
    return "; ".join(parts)


def plot_curves(run_dirs: Sequence[Path], path: Path) -> Path | None:
    """The curves of these runs as a PNG at `path` (nothing written when no run logged metrics)."""
    fig = curves_figure({Path(r).name: read_metrics(r) for r in run_dirs})
    if fig is None:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return Path(path)
