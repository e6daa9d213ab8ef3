"""Side-by-side grids: rows are prompts, columns are models (or a run's pool snapshots), and
every picture in a row starts from the same noise, so a row differs only by the model.

A cell is labelled by its row and column headers, separated from its neighbours, and a
small picture is upscaled by a whole factor with nearest-neighbour so a 16-pixel digit stays
sharp. Clips (video models) are animated GIFs in the same layout.

Where the grids come from:
- `from_eval`: the pictures an evaluation kept (`evaluate(samples=n)`): seed s, sample k = 0
  of each prompt, whose noise key every model shares; each cell shows its judge score;
- `by_sampling`: generated here for a set of models with the keys `seppo eval --seeds s`
  gives its k = 0 pictures;
- `snapshots`: θ_0 … θ_K of one run from its pool, with the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from seppo.embedded.digits import parse_digit
from seppo.evaluate import default_resolution, score_images
from seppo.judges.registry import load_judge
from seppo.models import eval_seeds, load_for_sampling, load_snapshot, sample
from seppo.report.html import esc, img, picture_uri
from seppo.run_dir import RunDir


@dataclass
class Comparison:
    rows: list[str]  # row labels: the prompts
    columns: list[str]  # column labels: models or snapshots
    cells: list[list]  # cells[r][c]: a PIL image, or a clip (list of frames)
    caption: str = ""  # how the pictures were made, in words
    notes: list[list[str]] | None = None  # text under each cell (its judge score), same shape as cells
    column_notes: list[str] = field(default_factory=list)  # text under each column header
    links: list[list[str]] | None = None  # a file each cell links to (a GIF written beside the page), same shape as cells


def grid_html(grid: Comparison) -> str:
    """An HTML table: a header row of column labels, then one row per prompt."""
    target = 128 if len(grid.columns) <= 6 else 80  # the long side of a cell, in CSS pixels
    head = "<th></th>" + "".join(
        f"<th>{esc(c)}" + (f"<small>{esc(grid.column_notes[i])}</small>" if grid.column_notes else "") + "</th>"
        for i, c in enumerate(grid.columns))
    rows = []
    for r, label in enumerate(grid.rows):
        cells = []
        for c, picture in enumerate(grid.cells[r]):
            note = f'<div class="score">{esc(grid.notes[r][c])}</div>' if grid.notes else ""
            picture = img(picture_uri(picture, target), f"{label} — {grid.columns[c]}")
            if grid.links:
                picture = f'<a href="{esc(grid.links[r][c])}">{picture}</a>'
            cells.append(f"<td>{picture}{note}</td>")
        rows.append(f'<tr><th class="row">{esc(label)}</th>{"".join(cells)}</tr>')
    caption = f'<p class="note">{esc(grid.caption)}</p>' if grid.caption else ""
    return f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{caption}'


# ---------------------------------------------------------------- from an evaluation


def from_eval(result, *, rows: Sequence[int] | None = None, judge: str | None = None) -> Comparison | None:
    """The pictures `result` kept, one row per prompt (`rows`: prompt indices, default all
    kept), one column per model; under each, its score by `judge` (default the first)."""
    if not result.samples or not all(result.samples.values()):
        return None
    models = result.models
    kept = len(next(iter(result.samples.values())))
    rows = list(rows) if rows is not None else list(range(kept))
    judge = judge or result.judges[0]
    scores = result.scores
    first_seed = scores["seed"].iloc[0]
    picked = scores[(scores["seed"] == first_seed) & (scores["k"] == 0)].set_index(["model", "prompt_idx"])
    prompts = [picked.loc[(models[0], p), "prompt"] for p in rows]
    settings = result.settings
    return Comparison(
        rows=prompts, columns=models, cells=[[result.samples[m][p] for m in models] for p in rows],
        notes=[[f"{judge} {picked.loc[(m, p), judge]:.2f}" for m in models] for p in rows],
        caption=(f"Every picture in a row starts from the same noise (evaluation seed {first_seed}, sample 0 of its "
                 f"prompt; the key is shared by every model). DDIM {settings['steps']} steps, guidance "
                 f"{settings['guidance']}. Under each picture: its {judge} score ({result.scales.get(judge) or judge})."))


# ---------------------------------------------------------------- sampled here


def score_judge(prompts: Sequence[str], video: bool):
    """The embedded digit judge (per frame for clips) when every prompt names a digit, else None."""
    if not prompts or any(parse_digit(p) is None for p in prompts):
        return None
    return load_judge("video-digit" if video else "digit")


def by_sampling(models: Mapping[str, tuple[str, Path | None]], prompts: Sequence[str], *, seed: int, steps: int,
                guidance: float, device="cpu", num_frames: int = 0) -> Comparison:
    """Columns {label: (MODEL, pool snapshot to load into it or None)}, rows `prompts`; picture
    p of every column has noise key `eval_seeds(seed, len(prompts))[p]`. `num_frames`: the clip
    length of video models (0: a run's own, else 8; `seppo.models.load_for_sampling`)."""
    keys = eval_seeds(seed, len(prompts))
    columns, judge, notes = {}, None, []
    for label, (spec, snapshot) in models.items():
        backbone = load_for_sampling(spec, device=device, num_frames=num_frames)
        if snapshot is not None:
            load_snapshot(backbone, snapshot)
        columns[label] = sample(backbone, list(prompts), seeds=keys, resolution=default_resolution(spec, backbone),
                                steps=steps, guidance=guidance)
        judge = judge or score_judge(prompts, backbone.is_video)
    if judge is not None:
        scores = {label: score_images(pictures, prompts, [judge])[judge.name] for label, pictures in columns.items()}
        notes = [[f"{judge.name} {scores[label][p]:.2f}" for label in columns] for p in range(len(prompts))]
    return Comparison(rows=list(prompts), columns=list(columns),
                      cells=[[columns[label][p] for label in columns] for p in range(len(prompts))],
                      notes=notes or None,
                      caption=(f"Every picture in a row starts from the same noise (the keys of `seppo eval --seeds "
                               f"{seed}`, sample 0). DDIM {steps} steps, guidance {guidance}."
                               + (f" Under each picture: its {judge.name} score." if judge is not None else "")))


def snapshots(run_dir: Path, prompts: Sequence[str], *, seed: int, steps: int, guidance: float, device="cpu") -> Comparison | None:
    """θ_0 … θ_K of one run (its pool) in columns, plus the exported model where it differs
    (an EMA); the mean judge score of each column under its header. None without a pool."""
    run = RunDir(run_dir)
    pool = run.snapshots()
    if not pool or not run.final.is_dir():
        return None
    keys = eval_seeds(seed, len(prompts))
    backbone = load_for_sampling(str(run_dir), device=device)
    resolution = default_resolution(str(run_dir), backbone)
    judge = score_judge(prompts, backbone.is_video)
    def draw():
        return sample(backbone, list(prompts), seeds=keys, resolution=resolution, steps=steps, guidance=guidance)

    export = draw() if run.config().train.ema_decay > 0 else None  # the export holds the EMA, not θ_K
    labels, pictures = [], []
    for j, path in pool.items():
        load_snapshot(backbone, path)
        labels.append(f"θ_{j}")
        pictures.append(draw())
    if export is not None:
        labels.append("export (EMA)")
        pictures.append(export)
    column_notes = []
    if judge is not None:
        column_notes = [f"{judge.name} {np.mean(score_images(p, prompts, [judge])[judge.name]):.2f}" for p in pictures]
    draws = run.summary().get("reference_draws") if run.summary_path.is_file() else None
    return Comparison(
        rows=list(prompts), columns=labels, cells=[[p[i] for p in pictures] for i in range(len(prompts))],
        column_notes=column_notes,
        caption=(f"θ_0 is the starting model and θ_k the weights after iteration k (the pool the references are drawn "
                 f"from); every picture in a row starts from the same noise. DDIM {steps} steps, guidance {guidance}."
                 + (f" Under each header: the mean {judge.name} score of its {len(prompts)} pictures." if judge else "")
                 + (f" References drawn: {_draws_words(draws)}." if draws else "")))


def _draws_words(draws: Sequence[int]) -> str:
    """The reference draws in order, or counted when there are many (`redraw: update`)."""
    if len(draws) <= 12:
        return ", ".join(f"θ_{j}" for j in draws) + " (in order)"
    counts = np.bincount(np.asarray(draws))
    return ", ".join(f"θ_{j} ×{n}" for j, n in enumerate(counts) if n)
