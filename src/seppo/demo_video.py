"""`seppo demo --video`: the embedded video default ("Moving Digits") end to end.

    base video model (image base + motion modules pretrained on real moving-digit clips)
      → Moving-Digits pairs (base and strong generators, simulated video annotator)
      → SFT (winners), Diffusion-DPO (pairs), SePPO (winners only): same base, same budget
      → evaluation: per-frame digit judge, motion judge, temporal consistency, 95% intervals
      → report/: table.md, summary.json, one animated GIF of samples per model, curves.png

Every run is `seppo.train.train(cfg)` on `configs/digits-seppo.yaml` with the video model
(`model.path=<base>`, `model.motion_adapter=<base>/motion_adapter`), only the motion modules
training (`train.train_motion_only`). Winners come from the `winners/` imagefolder of GIFs;
DPO reads the pairs parquet, whose `jpg_0`/`jpg_1` hold GIF bytes (decoded as clips when
`data.num_frames` is set for a video model). The budgets (`FULL`, `QUICK`) are stated in the table's header.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seppo.embedded.video_world import VideoWorldConfig, adapter_folder, ensure_moving_digits, ensure_video_base

from seppo.demo import demo_config_path

CONFIG = demo_config_path()
METHODS = ("sft", "dpo", "seppo")


@dataclass
class VideoDemoBudget:
    """Everything the demo's cost depends on (ours)."""

    pretrain: list = field(default_factory=list)  # overrides of the image base (`pretrain.*`)
    video: VideoWorldConfig = field(default_factory=VideoWorldConfig)
    iterations: int = 4  # K
    updates_per_iteration: int = 10  # U
    batch_size: int = 16  # clips per update
    sampler_steps: int = 4  # guided DDIM steps for reference clips
    eval_per_cell: int = 2  # evaluation clips per (digit, direction) cell
    eval_digits: int = 10  # evaluation cells: digits 0..eval_digits−1 × 4 directions
    eval_steps: int = 8  # guided DDIM steps at evaluation
    guidance: float = 3.0
    gif_clips: int = 40  # clips tiled into each model's GIF (one per cell)


# Full (sized from fwd+bwd ≈ 0.08 s and fwd ≈ 0.028 s per 8-frame clip, measured on these 2 cores
# when quiet): motion pretraining 120 + 120 updates of 12 clips (~4 min); 160 pairs at 6 guided
# steps (~2 min); K=4 × U=10 updates of 8 clips with 4-step guided reference clips (SePPO ~3.5 s
# an update, ~4.5 min for all three methods); 80 evaluation clips per model at 6 steps (~2 min).
# About 12 minutes, plus the image base if `seppo demo` has not cached it yet (~7 minutes).
FULL = VideoDemoBudget(video=VideoWorldConfig(steps=120, strong_extra_steps=120, batch_size=12, prompts_per_cell=4,
                                              generator_steps=6),
                       iterations=4, updates_per_iteration=10, batch_size=8, sampler_steps=4, eval_per_cell=2,
                       eval_steps=6)
# Quick: the same pipeline at toy sizes; the image base matches the tests' TINY one, so the
# tests' session cache already holds it.
QUICK = VideoDemoBudget(
    pretrain=["pretrain.steps=30", "pretrain.strong_extra_steps=30", "pretrain.pairs_per_digit=6",
              "pretrain.generator_steps=4"],
    video=VideoWorldConfig(steps=6, strong_extra_steps=4, batch_size=4, prompts_per_cell=1, generator_steps=2,
                           pair_digits=3),
    iterations=2, updates_per_iteration=1, batch_size=4, sampler_steps=2, eval_per_cell=1, eval_digits=2, eval_steps=2)


def run_config(method: str, base: Path, data: Path, out: Path, budget: VideoDemoBudget):
    from seppo.config import load_config

    source = ["data.source=pickapic", f"data.path={data / 'train.parquet'}"] if method == "dpo" else \
             ["data.source=imagefolder", f"data.path={data / 'winners'}"]
    return load_config(CONFIG, [
        *budget.pretrain, f"method={method}", f"model.path={base}", f"model.motion_adapter={adapter_folder(base)}",
        *source, f"data.num_frames={budget.video.num_frames}", "data.frame_stride=1",
        f"train.iterations={budget.iterations}", f"train.updates_per_iteration={budget.updates_per_iteration}",
        f"train.batch_size={budget.batch_size}", f"sampler.steps={budget.sampler_steps}",
        f"sampler.guidance={budget.guidance}", "train.train_motion_only=true", "checkpoints.every=0",
        "log.tensorboard=false", "log.progress=false", f"output_dir={out}", "overwrite=true"])


# ---------------------------------------------------------------- evaluation


def evaluation_prompts(per_cell: int, digits: int = 10) -> list[str]:
    from seppo.embedded.video import DIRECTIONS, video_prompt

    return [video_prompt(d, r) for _ in range(per_cell) for d in range(digits) for r in DIRECTIONS]


def evaluate_model(spec: str, prompts: list[str], budget: VideoDemoBudget, judges: dict) -> tuple[dict, list]:
    """Sample one clip per prompt with shared noise keys; score; mean and 95% bootstrap interval."""
    from seppo.embedded.video import clip_arrays, temporal_consistency
    from seppo.models import eval_seeds, load_for_sampling, sample
    from seppo.stats import bootstrap_ci

    backbone = load_for_sampling(spec, num_frames=budget.video.num_frames)
    t0 = time.time()
    clips = sample(backbone, prompts, seeds=eval_seeds(0, len(prompts)), resolution=16, steps=budget.eval_steps,
                   guidance=budget.guidance, batch_size=32)
    arrays = clip_arrays(clips)
    scores = {name: judge.score(arrays, prompts) for name, judge in judges.items()}
    scores["consistency"] = temporal_consistency(arrays)
    row = {name: dict(zip(("mean", "lo", "hi"), bootstrap_ci(v, seed=0))) for name, v in scores.items()}
    row["sample_seconds"] = round(time.time() - t0, 1)
    return row, clips


def write_gif(clips: list, path: Path, *, columns: int = 4, scale: int = 3) -> Path:
    """Tile clips into one animated GIF (row = digit, column = direction for the cell order)."""
    from PIL import Image

    from seppo.embedded.video import gif_bytes

    frames = []
    for f in range(len(clips[0])):
        w, h = clips[0][f].size
        rows = (len(clips) + columns - 1) // columns
        sheet = Image.new("L", (columns * w, rows * h))
        for i, clip in enumerate(clips):
            sheet.paste(clip[f], ((i % columns) * w, (i // columns) * h))
        frames.append(sheet)
    path.write_bytes(gif_bytes(frames, scale=scale))
    return path


def _run_stats(run_dir: Path) -> dict:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    summary = json.loads((run_dir / "summary.json").read_text())
    flip = [r["flip_rate"] for r in rows if "flip_rate" in r]
    return {"wall_seconds": summary["wall_seconds"], "flip_rate": float(np.mean(flip)) if flip else None,
            "final_loss": rows[-1]["loss"] if rows else None,
            "seconds_generating": round(sum(r.get("time_generate", 0.0) for r in rows), 1)}


def table_markdown(results: dict, budget: VideoDemoBudget, data_stats: dict) -> str:
    def cell(r, k):
        s = r[k]
        return f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"

    lines = [
        f"Moving Digits: K={budget.iterations} × U={budget.updates_per_iteration} updates of {budget.batch_size} clips "
        f"({budget.video.num_frames} frames), reference clips from {budget.sampler_steps} guided DDIM steps; "
        f"evaluation {budget.eval_per_cell * budget.eval_digits * 4} clips per model at {budget.eval_steps} steps, guidance {budget.guidance}.",
        f"Pairs: {data_stats['pairs']} ({data_stats['ties']} ties); winners minus base clips: digit "
        f"{_fmt(data_stats.get('winner_minus_base_digit'))}, motion {_fmt(data_stats.get('winner_minus_base_motion'))}.",
        "",
        "| model | digit (frames) | motion | consistency | flip rate | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | |")
            continue
        lines.append(f"| {name} | {cell(r, 'digit')} | {cell(r, 'motion')} | {cell(r, 'consistency')} | "
                     f"{_fmt(r.get('flip_rate'))} | {r.get('wall_seconds', '')} |")
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"


# ---------------------------------------------------------------- the demo


def run_video_demo(out: Path, quick: bool = False, budget: VideoDemoBudget | None = None) -> dict:
    """Build the video world, train SFT/DPO/SePPO with one budget, evaluate, write a report."""
    from seppo.config import load_config
    from seppo.embedded.video import FrameDigitJudge, MotionJudge
    from seppo.train import train

    budget = budget or (QUICK if quick else FULL)
    out = Path(out)
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    wall0 = time.time()
    timings: dict[str, float] = {}

    # 1. The base video model and Moving-Digits pairs (cached after the first run).
    t0 = time.time()
    pretrain = load_config(CONFIG, budget.pretrain).pretrain
    folders = ensure_video_base(pretrain, budget.video)
    timings["video_base"] = round(time.time() - t0, 1)
    t0 = time.time()
    data, data_stats = ensure_moving_digits(pretrain, budget.video)
    timings["pairs"] = round(time.time() - t0, 1)
    print(f"Moving-Digits: {data_stats['pairs']} pairs, {data_stats['ties']} ties, win rates {data_stats['win_rate']}")

    # 2. Train each method from the same base with the same budget.
    runs: dict[str, Path] = {}
    results: dict[str, dict] = {}
    for method in METHODS:
        t0 = time.time()
        runs[method] = train(run_config(method, folders["base"], data, out / "runs" / method, budget))
        timings[f"train_{method}"] = round(time.time() - t0, 1)

    # 3. Evaluate base and trained models on the same prompts and noise keys.
    judges = {"digit": FrameDigitJudge(), "motion": MotionJudge()}
    prompts = evaluation_prompts(budget.eval_per_cell, budget.eval_digits)
    for name, spec in {"base": folders["base"], **runs}.items():
        row, clips = evaluate_model(str(spec), prompts, budget, judges)
        if name in runs:
            row.update(_run_stats(runs[name]))
        results[name] = row
        write_gif(clips[:budget.gif_clips], report / f"{name}.gif")
    results = {name: results[name] for name in ("base", *METHODS) if name in results}

    # 4. Report.
    if runs:
        try:
            from seppo.report import plot_curves

            plot_curves(list(runs.values()), report / "curves.png")
        except ImportError:  # the report module is optional here
            pass
    timings["total"] = round(time.time() - wall0, 1)
    table = table_markdown(results, budget, data_stats)
    summary = {"budget": dataclasses.asdict(budget), "data": data_stats, "results": results, "timings": timings,
               "runs": {k: str(v) for k, v in runs.items()}, "base": str(folders["base"])}
    (report / "table.md").write_text(table)
    (report / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table)
    print(f"report: {report} (total {timings['total']} s)")
    return summary
