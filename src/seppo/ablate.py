"""`seppo ablate`: every arm of the ablation grid, from one base and one budget, then one table.

Each (arm, seed) is a `seppo train` subprocess on one thread (arms run `jobs` at a time;
tiny models gain nothing from a second thread), writing `out/runs/<arm>-s<seed>/`. A run
that already finished (`summary.json` present) is reused, so an interrupted grid resumes.
Then every final model, and the untrained base, is evaluated with the same noise keys
(`seppo.evaluate`), and per arm the scores are averaged over training seeds within each
(prompt, eval seed) unit before the bootstrap.

Outputs: `ablation.md`, `ablation.json`, `ablation.png`, `report.html`, `scores.parquet`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from seppo import paths
from seppo.config import load_config
from seppo.embedded.budget import EVAL_GUIDANCE, EVAL_STEPS, IMAGE_UNIT, QUICK
from seppo.embedded.world import ensure_world
from seppo.errors import ConfigError, SeppoError
from seppo.evaluate import evaluate, summarize, summary_markdown
from seppo.prompts import DIGIT_PROMPTS
from seppo.report import plot_curves, read_metrics, write_report
from seppo.run_dir import RunDir

# arm -> config overrides; None is the untrained base. The presets fix their reference and
# flipper themselves (seppo.methods), so the base config must leave those two out.
ARMS: "OrderedDict[str, list[str] | None]" = OrderedDict([
    ("base", None),
    ("sft", ["method=sft"]),
    ("dpo", ["method=dpo"]),
    ("seppo", ["method=seppo"]),
    ("seppo-indicator", ["method=seppo", "flipper=indicator"]),
    ("seppo-noflip", ["method=seppo", "flipper=none"]),
    ("seppo-initial", ["method=seppo", "reference=initial"]),
    ("seppo-latest", ["method=seppo", "reference=latest"]),
    ("spin", ["method=spin"]),
    ("ditto", ["method=ditto"]),
])


def _usable_arms(config_path: Path, overrides: Sequence[str], out: Path) -> tuple[list[str], dict[str, str]]:
    """Arms whose config validates (dpo needs pairs); the others with the reason."""
    usable, skipped = [], {}
    for arm, arm_overrides in ARMS.items():
        try:
            load_config(config_path, [*overrides, *(arm_overrides or [])])
        except ConfigError as e:
            skipped[arm] = str(e)
            continue
        usable.append(arm)
    return usable, skipped


def _train(config: Path, overrides: list[str], run_dir: Path) -> Path:
    if RunDir(run_dir).summary_path.is_file():  # finished before: an interrupted grid resumes
        return run_dir
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SEPPO_THREADS": "1"}
    command = [sys.executable, "-m", "seppo", "train", str(config), *overrides, f"output_dir={run_dir}", "overwrite=true"]
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SeppoError(f"ablation run {run_dir.name} failed (exit {done.returncode}); see {log.name}")
    return run_dir


def _plot(summary: list[dict], judges: Sequence[str], path: Path) -> None:
    fig = Figure(figsize=(max(5, 0.7 * len(summary) / len(judges) + 2) * len(judges), 3.5), constrained_layout=True)
    axes = fig.subplots(1, len(judges), squeeze=False)
    for ax, judge in zip(axes[0], judges):
        rows = [r for r in summary if r["judge"] == judge]
        means = [r["mean"] for r in rows]
        errors = [[r["mean"] - r["lo"] for r in rows], [r["hi"] - r["mean"] for r in rows]]
        ax.bar(range(len(rows)), means, yerr=errors, capsize=3, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(rows)), [r["arm"] for r in rows], rotation=45, ha="right")
        ax.set_title(f"{judge} (mean, 95% interval)")
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)


def run_ablation(config_path: str | Path, overrides: Sequence[str] = (), *, seeds: int = 3, out: Path,
                 quick: bool = False, jobs: int = 2, eval_kwargs: dict | None = None) -> Path:
    """Train every arm × seed, evaluate all with paired noise, write the table; returns `ablation.md`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = [*(QUICK if quick else []), *overrides]
    arms, skipped = _usable_arms(Path(config_path), overrides, out)
    cfg = load_config(config_path, overrides)

    # ─── training: the world first, then the first job alone, so the latent cache gets built once ───
    ensure_world(cfg, progress=not quick)
    jobs_list = [(arm, seed, out / "runs" / f"{arm}-s{seed}") for arm in arms if ARMS[arm] for seed in range(seeds)]

    def submit(job):
        return _train(Path(config_path), [*overrides, *ARMS[job[0]], f"seed={job[1]}"], job[2])

    wall0 = time.time()
    if jobs_list:
        submit(jobs_list[0])
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(submit, jobs_list[1:]))
    train_seconds = time.time() - wall0

    # ─── evaluation: every final model and the base, same prompts and noise keys ───
    models, names = [], []
    if "base" in arms:
        models.append(str(paths.model_folder(cfg)))
        names.append("base/s0")
    for arm, seed, run_dir in jobs_list:
        models.append(str(run_dir))
        names.append(f"{arm}/s{seed}")
    settings = {"prompts": list(DIGIT_PROMPTS), "judges": ["digit"], "seeds": [0] if quick else [0, 1, 2],
                "per_prompt": 2 if quick else 8, "steps": 4 if quick else EVAL_STEPS, "guidance": EVAL_GUIDANCE,
                "resolution": cfg.data.resolution, "progress": not quick, "unit": IMAGE_UNIT}
    settings.update(eval_kwargs or {})
    result = evaluate(models, names=names, out=out / "eval", **settings)

    # ─── per arm: averaged over training seeds within each (prompt, eval seed) unit ───
    scores = result.scores.assign(arm=result.scores["model"].str.split("/").str[0])
    summary, pairs = summarize(scores, result.judges, by="arm", unit=settings["unit"])
    focus = [p for p in pairs if "seppo" in (p["a"], p["b"]) or "base" in (p["a"], p["b"])]
    extra = {"wall s (mean)": {}, "final flip rate": {}, "seeds": {}}
    for arm in arms:
        runs = [run_dir for a, _, run_dir in jobs_list if a == arm]
        walls = [RunDir(r).summary().get("wall_seconds", float("nan")) for r in runs]
        flips = [m["flip_rate"].dropna().iloc[-1] for m in map(read_metrics, runs)
                 if "flip_rate" in m and m["flip_rate"].notna().any()]
        extra["wall s (mean)"][arm] = f"{sum(walls) / len(walls):.0f}" if walls else "–"
        extra["final flip rate"][arm] = f"{sum(flips) / len(flips):.2f}" if flips else "–"
        extra["seeds"][arm] = str(len(runs) or 1)
    diversity = {arm: sum(v for k, v in result.diversity.items() if k.startswith(f"{arm}/")) /
                 max(1, sum(k.startswith(f"{arm}/") for k in result.diversity)) for arm in arms} if result.diversity else None
    header = (f"# Ablation grid\n\nconfig: {config_path}; overrides: {' '.join(overrides) or '(none)'}; "
              f"{seeds} training seed(s); training wall time {train_seconds:.0f} s\n\n")
    notes = "".join(f"\nSkipped {arm}: {why}" for arm, why in skipped.items())
    markdown = header + summary_markdown(summary, focus, result.judges, by="arm", diversity=diversity,
                                         settings=result.settings, extra=extra) + notes + "\n"
    (out / "ablation.md").write_text(markdown)
    (out / "ablation.json").write_text(json.dumps({
        "config": str(config_path), "overrides": overrides, "seeds": seeds, "arms": arms, "skipped": skipped,
        "train_seconds": train_seconds, "summary": summary, "pairs": pairs, "diversity": diversity,
        "extra": extra, "eval": result.to_dict()}, indent=1))
    _plot(summary, result.judges, out / "ablation.png")
    seed0 = [run_dir for _, seed, run_dir in jobs_list if seed == 0]
    plot_curves(seed0, out / "curves.png")
    write_report(seed0, out / "report.html", eval_result=result, title="seppo ablation")
    return out / "ablation.md"
