"""The report page, in reading order:

1. **Results**: the headline table, what its intervals count, one computed sentence (headline.py);
2. **Side by side**: prompts × models from the same noise (grid.py);
3. **Training curves**: one row per run, only what its method logs, axes shared (figures.py);
4. **The pool**: θ_0 … θ_K of each run, collapsed;
5. **Resolved config**: each run's, collapsed, only the fields its method uses, with where
   each value came from (seppo.config_view).

`write_page` assembles any headline (an evaluation's, a benchmark's); `write_report` is
`seppo report` and the demos' report: runs, optionally an evaluation of them.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Mapping, Sequence

from seppo import __version__
from seppo.config_view import view
from seppo.prompts import DIGIT_PROMPTS
from seppo.report.figures import curves_caption, curves_figure, read_metrics
from seppo.report.grid import Comparison, by_sampling, from_eval, grid_html, snapshots
from seppo.report.headline import eval_headline, training_headline
from seppo.report.html import details, esc, img, page, png_uri, table
from seppo.run_dir import RunDir


def run_names(run_dirs: Sequence[Path]) -> dict[str, Path]:
    """{display name: run directory}: the folder's name, made unique where two share one."""
    names = [Path(r).name for r in run_dirs]
    return {(n if names.count(n) == 1 else f"{n}-{i}"): Path(r) for i, (n, r) in enumerate(zip(names, run_dirs))}


def default_prompts(run_dirs: Sequence[Path]) -> list[str]:
    """Digits 0–9 for runs in the embedded image world; none otherwise (pass prompts)."""
    runs = [RunDir(r) for r in run_dirs]
    if runs and all(r.is_run() for r in runs):
        configs = [r.config() for r in runs]
        if all(not c.model.motion_adapter and (c.data.source == "embedded" or c.model.path == "embedded:digits")
               for c in configs):
            return list(DIGIT_PROMPTS)
    return []


# ---------------------------------------------------------------- sections 3-5


def curves_section(runs: Mapping[str, Path]) -> str:
    metrics = {name: read_metrics(path) for name, path in runs.items()}
    fig = curves_figure(metrics)
    if fig is None:
        return '<p class="note">No run logged metrics (RUN/metrics.jsonl is empty or missing).</p>'
    return (f'<figure>{img(png_uri(fig), "training curves: " + curves_caption(metrics), "plot")}'
            f"<figcaption>One row per run; each row shows only what its method logs ({esc(curves_caption(metrics))}). "
            "A column is one quantity, its y axis shared by every run in it. Faint: every logged update; solid: the "
            "running mean. SFT's loss is e_θ(x^w), drawn under errors on winners.</figcaption></figure>")


def snapshots_section(runs: Mapping[str, Path], prompts: Sequence[str], *, seed: int, steps: int, guidance: float,
                      device) -> str:
    if not prompts:
        return '<p class="note">No prompts to sample: pass <code>--prompts</code> to <code>seppo report</code>.</p>'
    parts = []
    for name, path in runs.items():
        grid = snapshots(path, prompts, seed=seed, steps=steps, guidance=guidance, device=device)
        if grid is None:
            parts.append(f'<p class="note">{esc(name)}: no pool snapshots or no final model.</p>')
            continue
        parts.append(details(f"{esc(name)}: {esc(', '.join(grid.columns))}", grid_html(grid)))
    return ('<p class="note">The pool P = [θ_0, θ_1, …] each run drew its references from (for SFT, its checkpoints '
            "after each iteration). Open a run to see it.</p>" + "".join(parts))


def config_section(runs: Mapping[str, Path]) -> str:
    parts = []
    for name, path in runs.items():
        run = RunDir(path)
        if not run.is_run():
            continue
        cfg = run.config()
        shown, hidden = view(cfg)
        rows = [[f"<code>{esc(f.key)}</code>", f"<code>{esc(f.value)}</code>",
                 (esc(f.note + (f" {cfg.method}" if f.origin in ('preset', 'method') else "")),
                  "resolved" if f.origin in ("preset", "method") else "")]
                for f in shown]
        left_out = "; ".join(f"{k.rstrip('.')}{'*' if k.endswith('.') else ''} ({why})" for k, why in hidden.items())
        body = (table(["field", "value", "where it came from"], rows)
                + f'<p class="note">Left out, not used by this run: {esc(left_out)}.</p>'
                + f'<p class="note">The whole file: <code>{esc(run.config_path)}</code>.</p>')
        set_here = sum(f.origin != "default" for f in shown)
        parts.append(details(f"{esc(name)}: method {esc(cfg.method)}, {len(shown)} fields used, {set_here} not at "
                             "their default", body))
    return "".join(parts) or '<p class="note">No run directory with a config.yaml.</p>'


# ---------------------------------------------------------------- the page


def write_page(out: Path, *, title: str, headline: str, runs: Mapping[str, Path], comparison: Comparison | None,
               prompts: Sequence[str], seed: int, steps: int, guidance: float, intro: str = "", device="cpu") -> Path:
    """Write the five sections to `out` (a .html file); `prompts`, `seed`, `steps` and
    `guidance` make the pool's grids (the comparison's own noise, where it came from one)."""
    out = Path(out)
    if comparison is not None:
        side = grid_html(comparison)
    else:
        side = '<p class="note">No comparison grid: no final models or no prompts to sample.</p>'
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    subtitle = esc(intro or f"{len(runs)} run(s): {', '.join(runs)}") + f" · seppo {__version__} · {stamp}"
    sections = [
        ("results", "1. Results", headline),
        ("side-by-side", "2. Side by side", side),
        ("curves", "3. Training curves", curves_section(runs)),
        ("pool", "4. The pool, snapshot by snapshot", snapshots_section(runs, prompts, seed=seed, steps=steps,
                                                                         guidance=guidance, device=device)),
        ("config", "5. Resolved config", config_section(runs)),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(title, subtitle, sections), encoding="utf-8")
    return out


def write_report(run_dirs: Sequence[Path], out: Path, *, eval_result=None, names: Sequence[str] | None = None,
                 prompts: Sequence[str] | None = None, seed: int = 0, steps: int = 20, guidance: float = 3.0,
                 comparison_rows: Sequence[int] | None = None, extra: Mapping[str, Mapping[str, str]] | None = None,
                 title: str = "seppo report", intro: str = "", device="cpu") -> Path:
    """The report of these runs, at `out` (a .html file, or `out/report.html`).

    With `eval_result` (seppo.evaluate), its table is the headline and the pictures it kept
    (`evaluate(samples=n)`; rows `comparison_rows`) the side-by-side grid. Without one, the
    grid samples every run's final model beside the first run's θ_0 from `prompts` (default:
    the ten digits in the embedded world), with the noise keys of evaluation seed `seed`,
    `steps` DDIM steps and guidance `guidance`; the pool's grids use the same.
    """
    out = Path(out)
    if out.suffix != ".html":
        out = out / "report.html"
    runs = dict(zip(names, map(Path, run_dirs))) if names is not None else run_names(run_dirs)
    comparison, columns = None, {}
    if eval_result is not None:  # the grid follows the evaluation: its models, noise and sampler
        seed = int(eval_result.scores["seed"].iloc[0])
        steps, guidance = eval_result.settings["steps"], eval_result.settings["guidance"]
        comparison = from_eval(eval_result, rows=comparison_rows)
        if prompts is None:
            ordered = eval_result.scores.drop_duplicates("prompt_idx").sort_values("prompt_idx")["prompt"]
            prompts = comparison.rows if comparison is not None else list(ordered)[:10]
        columns = {name: (spec, None) for name, spec in eval_result.settings["models"].items()}
    prompts = list(prompts) if prompts is not None else default_prompts(list(runs.values()))
    finals = {name: path for name, path in runs.items() if RunDir(path).final.is_dir()}
    if not columns and finals:  # the first run's starting model θ_0 beside every final model
        first = next(iter(finals.values()))
        start = RunDir(first).snapshots().get(0)
        columns = ({"start (θ_0)": (str(first), start)} if start is not None else {}) | {
            name: (str(path), None) for name, path in finals.items()}
    if comparison is None and prompts and columns:
        comparison = by_sampling(columns, prompts, seed=seed, steps=steps, guidance=guidance, device=device)
    headline = eval_headline(eval_result, extra=extra) if eval_result is not None else training_headline(runs)
    return write_page(out, title=title, headline=headline, runs=runs, comparison=comparison, prompts=prompts,
                      seed=seed, steps=steps, guidance=guidance, intro=intro, device=device)
