"""The `seppo` command line (also `python -m seppo`).

    seppo pretrain CONFIG [key=value ...]     train the embedded base model from scratch
    seppo train CONFIG [key=value ...]        align a model (method: seppo, sft, dpo, spin, ditto)
    seppo sample MODEL --prompt P --n N       write a PNG grid
    seppo eval MODEL [MODEL ...]              score models with judges, print a table
    seppo demo [--quick] [--out DIR]          the embedded default end to end
    seppo report RUN [RUN ...]                one self-contained HTML report
    seppo benchmark CONFIG --seeds 8          tune each method, then every arm × training seed
    seppo ablate CONFIG --seeds 3             every arm × training seed at the config's own settings
    seppo diagnose-flipper RUN                flipper verdicts against a judge's

A problem with the input (config key, file, row) prints one line naming it and exits 2;
`--debug` shows the traceback. An interrupted `train` exits 3 after writing a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from seppo.benchmark import ARMS, BenchmarkPlan, run_benchmark
from seppo.config import load_config, save_config
from seppo.demo import run_demo
from seppo.demo_video import run_video_demo
from seppo.diagnose import diagnose_flipper
from seppo.embedded.pretrain import pretrain
from seppo.embedded.world import ensure_world
from seppo.errors import SeppoError
from seppo.evaluate import evaluate
from seppo.models import eval_seeds, grid, load_for_sampling, sample
from seppo.prompts import load_prompts
from seppo.report import write_report
from seppo.run_dir import RunDir
from seppo.train import train

# What torch.distributed's errors say when a peer died or stopped answering.
PEER_LOST = ("Timed out waiting", "Connection closed by peer", "Connection reset by peer", "Broken pipe")


def default_threads(cores: int, local_processes: int = 1) -> int:
    """CPU threads per process when $SEPPO_THREADS is unset: half this process's share of the
    cores, at most 4. Torch's threads spin while they wait for each other, so a thread per
    core collapses when another job holds a core (measured on a 2-core box with one core
    busy: median update 1.0 s with 1 thread, 24.8 s with 2; README "Speed")."""
    return max(1, min(4, cores // (2 * max(1, local_processes))))


def _threads() -> None:
    n = os.environ.get("SEPPO_THREADS")
    if not n:
        n = default_threads(len(os.sched_getaffinity(0)), int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(int(n))


def cmd_pretrain(args) -> int:
    cfg = load_config(args.config, args.overrides)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    folders = pretrain(cfg.pretrain, out, seed=cfg.seed,
                       snapshots={"base": cfg.pretrain.steps, "strong": cfg.pretrain.steps + cfg.pretrain.strong_extra_steps})
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    return 0


def cmd_train(args) -> int:
    cfg = load_config(args.config, args.overrides)
    RunDir(cfg.output_dir).refuse_if_taken(cfg)  # before building anything
    # The embedded world is built before the loop, once per machine: the other processes of a
    # multi-process launch wait for this one when the loop sets up (accelerate's rendezvous).
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        ensure_world(cfg, progress=cfg.log.progress)
    try:
        run_dir = train(cfg)
    except RuntimeError as e:  # gloo/NCCL name a lost peer only in the message
        if not any(sign in str(e) for sign in PEER_LOST):
            raise
        raise SeppoError(f"a peer process stopped answering (train.collective_timeout is {cfg.train.collective_timeout} s: "
                         f"{str(e).strip().splitlines()[0][-120:]}); resume with resume=true") from None
    print(f"final model: {run_dir / 'final'}")
    return 0


def cmd_sample(args) -> int:
    backbone = load_for_sampling(args.model)
    resolution = args.resolution or backbone.unet.config.sample_size * backbone.vae_scale_factor
    prompts = [p for p in args.prompt for _ in range(args.n)]
    images = sample(backbone, prompts, seeds=eval_seeds(args.seed, len(prompts)), resolution=resolution,
                    steps=args.steps, guidance=args.guidance)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, columns=args.n, scale=max(1, 128 // resolution)).save(out)
    print(f"wrote {out} ({len(images)} images)")
    return 0


def cmd_eval(args) -> int:
    result = evaluate(args.models, prompts=load_prompts(args.prompts), judges=args.judges.split(","),
                      judge_paths=_judge_paths(args.judge_path),
                      seeds=[int(s) for s in args.seeds.split(",")], per_prompt=args.per_prompt, steps=args.steps,
                      guidance=args.guidance, out=Path(args.out) if args.out else None)
    print(result.table_markdown())
    return 0


def _judge_paths(items: list[str]) -> dict[str, dict[str, str]]:
    """["pickscore.model=/w/ps", "pickscore.processor=/w/clip"] → {"pickscore": {"model": ..., ...}}."""
    paths: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, path = item.partition("=")
        judge, dot, part = key.partition(".")
        if not (sep and dot and judge and part):
            raise SeppoError(f"--judge-path {item!r}: expected JUDGE.KEY=PATH, e.g. pickscore.model=/weights/PickScore_v1")
        paths.setdefault(judge, {})[part] = path
    return paths


def cmd_demo(args) -> int:
    if args.video:
        run_video_demo(Path(args.out), quick=args.quick)
    else:
        run_demo(Path(args.out), quick=args.quick)
    return 0


def cmd_report(args) -> int:
    path = write_report([Path(r) for r in args.runs], Path(args.out))
    print(f"wrote {path}")
    return 0


def cmd_benchmark(args) -> int:
    plan = BenchmarkPlan(seeds=args.seeds, tune_seeds=args.tune_seeds, tune=args.tune,
                         arms=[a.strip() for a in args.arms.split(",")])
    unknown = [a for a in plan.arms if a not in ARMS]
    if unknown:
        raise SeppoError(f"--arms: unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    path = run_benchmark(args.config, args.overrides, out=Path(args.out), plan=plan, quick=args.quick, jobs=args.jobs)
    print(f"wrote {path}")
    return 0


def cmd_diagnose(args) -> int:
    result = diagnose_flipper(Path(args.run), prompts=load_prompts(args.prompts), judge=args.judge,
                              flipper_draws=args.flipper_draws)
    print(json.dumps(result, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seppo", description=__doc__.split("\n\n")[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    for name, fn, help_ in (("pretrain", cmd_pretrain, "train the embedded base model from scratch"),
                            ("train", cmd_train, "align a model")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("config", help="YAML config (configs/*.yaml)")
        s.add_argument("overrides", nargs="*", help="key.sub=value overrides")
        s.set_defaults(fn=fn)

    s = sub.add_parser("sample", help="write a PNG grid of samples")
    s.add_argument("model", help="run directory, diffusers folder, or BASE+LORA")
    s.add_argument("--prompt", action="append", required=True)
    s.add_argument("--n", type=int, default=8, help="samples per prompt")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--guidance", type=float, default=3.0)
    s.add_argument("--resolution", type=int, default=0)
    s.add_argument("--out", default="samples.png")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("eval", help="score models with judges")
    s.add_argument("models", nargs="+")
    s.add_argument("--prompts", default="digits", help="digits | pickapic:PATH | parti:PATH | hps:PATH | FILE.txt")
    s.add_argument("--judges", default="digit")
    s.add_argument("--judge-path", action="append", default=[], help="JUDGE.KEY=PATH for judge weights, e.g. pickscore.model=DIR (repeatable)")
    s.add_argument("--seeds", default="0,1,2")
    s.add_argument("--per-prompt", type=int, default=8)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--guidance", type=float, default=3.0)
    s.add_argument("--out", default="")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("demo", help="the embedded default end to end")
    s.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    s.add_argument("--video", action="store_true", help="the moving-digits video default")
    s.add_argument("--out", default="demo-out")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("report", help="one self-contained HTML report")
    s.add_argument("runs", nargs="+")
    s.add_argument("--out", default="report.html")
    s.set_defaults(fn=cmd_report)

    for name, help_, seeds, tune in (
            ("benchmark", "tune each method on validation keys, then every arm × training seed; seed-level tables",
             8, True),
            ("ablate", "every arm × training seed at the config's own settings (no tuning); seed-level tables",
             3, False)):
        s = sub.add_parser(name, help=help_, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        s.add_argument("config", help="YAML config of the embedded world (configs/digits-seppo.yaml)")
        s.add_argument("overrides", nargs="*", help="key.sub=value overrides for every run")
        s.add_argument("--seeds", type=int, default=seeds, help="final training seeds per arm")
        s.add_argument("--tune-seeds", type=int, default=2, help="training seeds per tuning grid point")
        s.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run")
        s.add_argument("--jobs", type=int, default=2, help="training runs at a time (one thread each)")
        s.add_argument("--quick", action="store_true", help="seconds-long runs on a toy world (smoke test)")
        s.add_argument("--out", default=name, help="output folder")
        s.set_defaults(fn=cmd_benchmark, tune=tune)

    s = sub.add_parser("diagnose-flipper", help="flipper verdicts against a judge's")
    s.add_argument("run")
    s.add_argument("--prompts", default="digits")
    s.add_argument("--judge", default="digit")
    s.add_argument("--flipper-draws", type=int, default=1)
    s.set_defaults(fn=cmd_diagnose)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _threads()
    try:
        return args.fn(args)
    except SeppoError as e:
        if args.debug:
            raise
        print(f"seppo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
