"""`seppo demo`: the embedded default end to end ("Pick-a-Digit", a Pick-a-Pic in miniature).

1. the base model (pretrained once, cached) and Pick-a-Digit pairs labelled by a simulated
   annotator (cached); reports by how much winners beat the base's own samples;
2. SFT (winners), Diffusion-DPO (pairs) and SePPO (winners only) from the same base with
   the same budget (the same updates and winners seen);
   each at its settings selected by `seppo benchmark` on validation keys (`configs/selected.yaml`);
3. evaluation of base and all three with fixed, shared seeds on the same prompts, with the
   world's judges (the learned preference judge, the annotator's own utility as the
   simulation's oracle, class correctness, the stroke term): means with 95% bootstrap
   intervals over images, diversity, flip rate and wall time. One training seed per method:
   the table is illustrative; `seppo benchmark` gives intervals over training seeds;
4. a report folder: sample grids, curves, `summary.json`, `table.md` and `report.html`.

Only the evaluation needs the learned judge, so on a first run its own pairs and fit are built
in a subprocess beside the training runs (with this process's torch threads: the same bits as
building it here), and the evaluation waits for it (not with `--quick`, whose judge is too
small to be worth a process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seppo import paths
from seppo.api import record_in_cards
from seppo.config import load_config, save_config
from seppo.embedded.budget import DEMO_CONFIG, EVAL_GUIDANCE, EVAL_STEPS, IMAGE_JUDGES, IMAGE_UNIT, QUICK, selected_overrides
from seppo.embedded.preference import ensure_preference_judge, preference_judge_path
from seppo.embedded.world import ensure_pick_a_digit, ensure_world
from seppo.errors import SeppoError
from seppo.evaluate import evaluate
from seppo.prompts import DIGIT_PROMPTS
from seppo.report import plot_curves, write_report
from seppo.run_dir import RunDir
from seppo.train import train

METHODS = ("sft", "dpo", "seppo")
# The toy world's judge (`--quick`) builds in about a second, less than starting a process takes
# (cold `--quick`: 23 s in process, 29 s beside), so it is built here; the tests switch this on.
JUDGE_BESIDE_WHEN_QUICK = False


def run_demo(out: Path, *, quick: bool = False, overrides: list[str] = (), retrain: bool = False) -> dict:
    """The demo into `out`. A method whose run in `out` finished with the same config and seppo
    version is reused, not trained again (`retrain` trains it anyway): a rerun costs the evaluation."""
    t_start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    common = [*(QUICK if quick else []), *overrides, "overwrite=true", "log.report_to=none"]
    base_cfg = load_config(DEMO_CONFIG, common)

    # 1. base model and preference data; the learned judge, if not cached, built beside step 2
    t0 = time.time()
    ensure_world(base_cfg)
    base = paths.model_folder(base_cfg)
    _, data_stats = ensure_pick_a_digit(base_cfg.pretrain)
    world = out / "world.yaml"  # names the world whose judge pairs fit the learned judge (--quick builds a toy one)
    save_config(base_cfg, world)
    against_base = ("" if data_stats["base_reward"] is None else  # pretrain.pair_generators may leave the base out
                    f" vs the base's own samples {data_stats['base_reward']:.3f} (gap {data_stats['winner_minus_base']:+.3f})")
    print(f"Pick-a-Digit: {data_stats['pairs']} pairs, ties {data_stats['tie_share']:.0%}; winners' digit-judge reward "
          f"{data_stats['winner_reward']:.3f}{against_base}; annotator-utility gap winner − loser "
          f"{data_stats['utility_gap_mean']:.3f} (median {data_stats['utility_gap_median']:.3f})")
    judge_path = preference_judge_path(base_cfg.pretrain)
    beside = not (judge_path.exists() or paths.from_prebuilt(judge_path)) and (not quick or JUDGE_BESIDE_WHEN_QUICK)
    judge_build = _judge_beside(world, out / "judge.log") if beside else None
    setup_seconds = time.time() - t0
    try:
        # 2. the three methods, one budget, each at its selected settings
        runs, wall = {}, {}
        for method in METHODS:
            cfg = load_config(DEMO_CONFIG, [*selected_overrides(method), *common, f"method={method}",
                                            f"output_dir={out / 'runs' / method}"])
            run = RunDir(cfg.output_dir)
            if run.finished_as(cfg) and not retrain:
                print(f"{method}: reusing the finished run {run.path} (same config and seppo version; --retrain trains it again)")
            else:
                train(cfg)
            runs[method], wall[method] = run.path, run.summary()["wall_seconds"]
        if judge_build is not None:
            t1 = time.time()
            _wait(judge_build, out / "judge.log", progress=base_cfg.log.progress)
            setup_seconds += time.time() - t1  # what the judge's build added after the runs
    finally:
        if judge_build is not None and judge_build.poll() is None:  # training failed: leave nothing running
            os.killpg(judge_build.pid, signal.SIGKILL)
            judge_build.wait()
    judge_meta = ensure_preference_judge(base_cfg.pretrain, progress=base_cfg.log.progress).meta
    print(f"learned preference judge: {judge_meta['heldout_agreement']:.1%} held-out agreement with the annotator "
          f"({judge_meta['heldout_decided']} pairs)")

    # 3. evaluation: base and the three finals, shared seeds
    per_prompt = 2 if quick else 20
    models = [str(base)] + [str(runs[m]) for m in METHODS]
    names = ["base", *METHODS]
    result = evaluate(models, prompts=list(DIGIT_PROMPTS), judges=IMAGE_JUDGES, seeds=[0], per_prompt=per_prompt,
                      judge_paths={"preference": {"config": str(world)}},
                      steps=4 if quick else EVAL_STEPS, guidance=EVAL_GUIDANCE, names=names, out=out / "eval",
                      progress=base_cfg.log.progress, unit=IMAGE_UNIT,
                      samples=len(DIGIT_PROMPTS))  # the report's side-by-side grid: every digit, same noise per row
    record_in_cards(result, prompts="digits")
    flip = {m: _last_iteration_mean(runs[m], "flip_rate") for m in METHODS}
    by_judge = {(s["model"], s["judge"]): {k: s[k] for k in ("mean", "lo", "hi")} for s in result.summary}
    rows = [{"model": name, "judges": {j: by_judge[(name, j)] for j in IMAGE_JUDGES},
             "diversity": result.diversity.get(name), "flip_rate": flip.get(name),
             "wall_seconds": round(wall.get(name, 0.0), 1) or None} for name in names]
    table = _table(rows) + (f"\n\n95% bootstrap intervals over images ({per_prompt * len(DIGIT_PROMPTS)} per model, "
                             f"noise keys shared across models); pairwise win rates and p-values: {out / 'eval' / 'eval.md'}."
                             "\nOne training seed per method: this table is illustrative. Intervals over training seeds, the "
                             "unit of evidence, are `seppo benchmark`'s (benchmarks/pick-a-digit-2026-11-30/).")
    print(table)

    # 4. report
    plot_curves([runs[m] for m in METHODS], out / "curves.png")
    report = write_report([runs[m] for m in METHODS], out / "report.html", eval_result=result,
                          title="seppo demo: Pick-a-Digit")
    summary = {"quick": quick, "rows": rows, "pick_a_digit": data_stats, "preference_judge": judge_meta,
               "selected": {m: selected_overrides(m) for m in METHODS}, "judge_scales": result.scales,
               "pairs": result.pairs,
               "setup_seconds": round(setup_seconds, 1), "total_seconds": round(time.time() - t_start, 1),
               "budget": {"iterations": base_cfg.train.iterations, "updates_per_iteration": base_cfg.train.updates_per_iteration,
                          "batch_size": base_cfg.train.batch_size, "reference_sampler_steps": base_cfg.sampler.steps,
                          "eval_samples_per_model": per_prompt * len(DIGIT_PROMPTS)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "table.md").write_text(table + "\n")
    print(f"report: {report}\nsummary: {out / 'summary.json'} ({summary['total_seconds']:.0f} s in all)")
    return summary


def _judge_beside(world: Path, log: Path) -> subprocess.Popen:
    """Build the learned judge of `world` (its pairs, then its fit) in a subprocess of its own
    session, on as many torch threads as this process uses, its output in `log`."""
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "SEPPO_THREADS": threads}
    code = ("import sys; from seppo.config import load_config; from seppo.embedded.preference import ensure_preference_judge; "
            "ensure_preference_judge(load_config(sys.argv[1]).pretrain, progress=False)")
    print(f"building the learned preference judge beside the training runs (log: {log})")
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "-c", code, str(world)], env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait(build: subprocess.Popen, log: Path, *, progress: bool = True) -> None:
    """Wait for the judge's build, showing the time waited; a failed build names its log."""
    with tqdm(desc=f"waiting for the learned preference judge (log: {log})", bar_format="{desc}: {elapsed}",
              disable=not progress or build.poll() is not None) as bar:
        while build.poll() is None:
            time.sleep(0.5)
            bar.update()
    if build.wait() != 0:
        raise SeppoError(f"building the learned preference judge failed (exit {build.returncode}); see {log}")


def _last_iteration_mean(run_dir: Path, key: str) -> float | None:
    rows = RunDir(run_dir).metrics()
    last = [r[key] for r in rows if r["iteration"] == rows[-1]["iteration"] and key in r]
    return sum(last) / len(last) if last else None


def _table(rows: list[dict]) -> str:
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    heads = {"preference": "preference (learned judge)", "oracle": "oracle (annotator's utility, simulation only)",
             "digit": "digit (class correctness)", "stroke": "stroke"}
    lines = ["| model | " + " | ".join(f"{heads[j]} [95% CI]" for j in IMAGE_JUDGES)
             + " | diversity | flip rate (last iteration) | train wall time (s) |",
             "|---" * (len(IMAGE_JUDGES) + 4) + "|"]
    for r in rows:
        cells = " | ".join(f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]" for v in r["judges"].values())
        lines.append(f"| {r['model']} | {cells} | {fmt(r['diversity'], '.2f')} "
                     f"| {fmt(r['flip_rate'], '.2f')} | {fmt(r['wall_seconds'], '.0f')} |")
    return "\n".join(lines)
