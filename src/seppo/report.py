"""`seppo report`: one self-contained HTML page per set of runs (every image a data URI).

For each run directory: its resolved config, training curves (loss, flip rate, implicit
accuracy vs update), sample grids of every pool snapshot θ_J for fixed prompts and seeds,
and the judge reward at snapshots (from `eval_at_snapshots.jsonl` when training wrote it,
else the digit judge on the grid images in the embedded world); then the evaluation tables
of an `EvalResult`. Plots use matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from seppo.embedded.digits import parse_digit  # noqa: E402
from seppo.evaluate import score_images  # noqa: E402
from seppo.judges.registry import load_judge  # noqa: E402
from seppo.models import eval_seeds, grid, load_for_sampling, load_snapshot, sample  # noqa: E402
from seppo.prompts import DIGIT_PROMPTS  # noqa: E402
from seppo.run_dir import RunDir, read_jsonl  # noqa: E402

CURVES = (("loss", "loss"), ("flip_rate", "flip rate"), ("implicit_acc", "implicit accuracy"))


# ---------------------------------------------------------------- reading a run


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """`metrics.jsonl` as a table, one row per logged update (empty if absent)."""
    return pd.DataFrame(RunDir(run_dir).metrics())


# ---------------------------------------------------------------- plots


def plot_curves(run_dirs: Sequence[Path], path: Path) -> Path:
    """Loss, flip rate and implicit accuracy vs update, one line per run, as a PNG at `path`."""
    fig = _curves_figure(run_dirs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _curves_figure(run_dirs: Sequence[Path]):
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.2), constrained_layout=True)
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        if metrics.empty:
            continue
        x = metrics["step"] if "step" in metrics else metrics.index
        for ax, (key, _) in zip(axes, CURVES):
            if key in metrics and metrics[key].notna().any():
                ax.plot(x, metrics[key], label=Path(run_dir).name, lw=1.2)
    for ax, (key, label) in zip(axes, CURVES):
        ax.set_title(label)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    return fig


def _reward_figure(points: pd.DataFrame, x: str, title: str):
    """One line per numeric column of `points` against column `x`."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)
    for column in points.columns:
        if column != x and pd.api.types.is_numeric_dtype(points[column]):
            ax.plot(points[x], points[column], marker="o", label=column)
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _png_uri(figure_or_image) -> str:
    """A matplotlib figure (closed afterwards) or a PIL image → data:image/png;base64,..."""
    buffer = io.BytesIO()
    if hasattr(figure_or_image, "savefig"):
        figure_or_image.savefig(buffer, format="png", dpi=100)
        plt.close(figure_or_image)
    else:
        figure_or_image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


# ---------------------------------------------------------------- snapshot grids


def snapshot_grids(run_dir: Path, prompts: Sequence[str], seeds: Sequence[int], *, device="cpu") -> tuple[list, pd.DataFrame]:
    """[(label, grid image)] for every pool snapshot and the final model, with the run's sampler
    settings; plus the digit judge's mean reward per snapshot when every prompt names a digit.

    Rows of a grid are seeds, columns prompts; image (seed s, prompt p) has noise key
    `eval_seeds(s, P)[p]`, the same in every snapshot.
    """
    run = RunDir(run_dir)
    config = run.config()
    backbone = load_for_sampling(str(run_dir), device=device)
    resolution = config.data.resolution
    batch_prompts = [p for _ in seeds for p in prompts]
    keys = [key for s in seeds for key in eval_seeds(s, len(prompts))]
    judge = load_judge("digit") if all(parse_digit(p) is not None for p in prompts) else None
    final_state = {k: v.detach().clone() for k, v in backbone.unet.state_dict().items()}
    models = [(f"θ_{j}", path) for j, path in run.snapshots().items()] + [("final", None)]
    grids, rewards = [], []
    for label, path in models:
        if path is None:
            backbone.unet.load_state_dict(final_state)
        else:
            load_snapshot(backbone, path)
        images = sample(backbone, batch_prompts, seeds=keys, resolution=resolution, steps=config.sampler.steps,
                        guidance=config.sampler.guidance, eta=config.sampler.eta)
        grids.append((label, grid(images, columns=len(prompts), scale=4 if resolution <= 64 else 1)))
        if judge is not None:
            rewards.append({"snapshot": label, "digit": float(score_images(images, batch_prompts, [judge])["digit"].mean())})
    return grids, pd.DataFrame(rewards)


# ---------------------------------------------------------------- HTML


def _eval_html(eval_result) -> str:
    summary = pd.DataFrame(eval_result.summary)
    summary["mean [95%]"] = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in zip(summary["mean"], summary["lo"], summary["hi"])]
    table = summary.pivot(index="model", columns="judge", values="mean [95%]").reindex(eval_result.models)
    if eval_result.diversity:
        table["diversity"] = pd.Series(eval_result.diversity).map("{:.3f}".format)
    parts = ["<h2>Evaluation</h2>", f"<pre>{html.escape(json.dumps(eval_result.settings, indent=1))}</pre>",
             table.to_html(escape=True)]
    if eval_result.pairs:
        pairs = pd.DataFrame(eval_result.pairs)
        parts += ["<h3>Paired win rates (a vs b)</h3>", pairs.to_html(index=False, float_format="{:.4g}".format)]
    return "\n".join(parts)


def _run_html(run_dir: Path, prompts, seeds, device) -> str:
    run_dir, run = Path(run_dir), RunDir(run_dir)
    parts = [f"<h2>{html.escape(run_dir.name)}</h2>"]
    if run.is_run():
        parts.append(f"<details open><summary>resolved config</summary><pre>{html.escape(run.config_path.read_text())}</pre></details>")
    if run.summary_path.is_file():
        parts.append(f"<details><summary>summary</summary><pre>{html.escape(run.summary_path.read_text())}</pre></details>")
    parts.append(_img(_png_uri(_curves_figure([run_dir])), f"curves of {run_dir.name}"))
    at_snapshots = pd.DataFrame(read_jsonl(run.eval_at_snapshots))
    if not at_snapshots.empty:
        x = "step" if "step" in at_snapshots else at_snapshots.columns[0]
        parts.append(_img(_png_uri(_reward_figure(at_snapshots, x, "judge reward at snapshots")), "judge reward at snapshots"))
    if prompts and run.final.is_dir():
        grids, rewards = snapshot_grids(run_dir, prompts, seeds, device=device)
        parts.append(f"<h3>Samples at each snapshot</h3><p>columns: prompts {html.escape(', '.join(prompts))}; "
                     f"rows: seeds {html.escape(', '.join(map(str, seeds)))} (same noise in every snapshot)</p>")
        if not rewards.empty:
            rewards["index"] = np.arange(len(rewards))
            fig = _reward_figure(rewards[["index", "digit"]], "index", f"digit judge on these {len(prompts) * len(seeds)} images")
            fig.axes[0].set_xticks(rewards["index"], rewards["snapshot"])
            parts.append(_img(_png_uri(fig), "digit reward at snapshots"))
        for label, image in grids:
            parts.append(f'<figure>{_img(_png_uri(image), label)}<figcaption>{html.escape(label)}</figcaption></figure>')
    return "\n".join(parts)


def _default_prompts(run_dirs: Sequence[Path]) -> list[str]:
    """Digits 0–9 for embedded runs; no grids otherwise unless prompts are given."""
    sources = {RunDir(r).config().data.source if RunDir(r).is_run() else None for r in run_dirs}
    return list(DIGIT_PROMPTS) if sources == {"embedded"} else []


def write_report(run_dirs: list[Path], out: Path, *, eval_result=None, prompts: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None, title: str = "seppo report", device="cpu") -> Path:
    """Write the HTML report to `out` (a .html file, or `out/report.html`); return its path."""
    out = Path(out)
    if out.suffix != ".html":
        out = out / "report.html"
    run_dirs = [Path(r) for r in run_dirs]
    prompts = list(prompts) if prompts is not None else _default_prompts(run_dirs)
    seeds = list(seeds) if seeds is not None else [0, 1]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if len(run_dirs) > 1:
        body += ["<h2>All runs</h2>", _img(_png_uri(_curves_figure(run_dirs)), "curves of all runs")]
    body += [_run_html(r, prompts, seeds, device) for r in run_dirs]
    if eval_result is not None:
        body.append(_eval_html(eval_result))
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
            "img{image-rendering:pixelated;max-width:100%}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:6px}"
            "figure{display:inline-block;margin:4px}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


__all__ = ["plot_curves", "write_report", "snapshot_grids", "read_metrics"]
