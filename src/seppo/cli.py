"""The `seppo` command line (also `python -m seppo`).

    seppo pretrain CONFIG [key=value ...]     train the embedded base model from scratch
    seppo train CONFIG [key=value ...]        align a model (method: seppo, sft, dpo, spin, ditto)
    seppo sample MODEL --prompt P --n N       write a PNG grid
    seppo eval MODEL [MODEL ...]              score models with judges, print a table
    seppo demo [--quick] [--out DIR] [--retrain] the embedded default end to end
    seppo report RUN [RUN ...]                one self-contained HTML report (results first)
    seppo benchmark CONFIG --seeds 8          tune each method, then every arm × training seed
    seppo ablate CONFIG --seeds 3             every arm × training seed at the config's own settings
    seppo diagnose-flipper RUN                flipper verdicts against a judge's

A problem with the input (config key, file, row) prints one line naming it and exits 2;
`--debug` shows the traceback. An interrupted `train` exits 3 after writing a checkpoint.
Every option of every command has a help line with its default: `seppo CMD --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from seppo import __version__
from seppo.config import load_config, save_config
from seppo.errors import SeppoError
from seppo.methods import ARMS

# Each command imports its own machinery (torch, diffusers, transformers, accelerate) when it
# runs, so `seppo --help`, `--version` and a bad config answer in a fraction of a second.

# What torch.distributed's errors say when a peer died or stopped answering.
PEER_LOST = ("Timed out waiting", "Connection closed by peer", "Connection reset by peer", "Broken pipe")


def default_threads(cores: int, local_processes: int = 1) -> int:
    """CPU threads per process when $SEPPO_THREADS is unset: half this process's share of the
    cores, at most 4. Torch's threads spin while they wait for each other, so a thread per
    core collapses when another job holds a core (measured on a 2-core box with one core
    busy: median update 1.0 s with 1 thread, 24.8 s with 2; README "Speed")."""
    return max(1, min(4, cores // (2 * max(1, local_processes))))


def _threads() -> None:
    import torch

    n = os.environ.get("SEPPO_THREADS")
    if not n:
        n = default_threads(len(os.sched_getaffinity(0)), int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(int(n))


def cmd_pretrain(args) -> int:
    from seppo.embedded.pretrain import pretrain

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
    cfg = load_config(args.config, args.overrides)  # a config error is reported before the heavy imports
    from seppo.api import align

    # The embedded world is built before the loop, once per machine (seppo.api.align): the other
    # processes of a multi-process launch wait for this one when the loop sets up.
    try:
        run_dir = align(cfg)
    except RuntimeError as e:  # gloo/NCCL name a lost peer only in the message
        if not any(sign in str(e) for sign in PEER_LOST):
            raise
        raise SeppoError(f"a peer process stopped answering (train.collective_timeout is {cfg.train.collective_timeout} s: "
                         f"{str(e).strip().splitlines()[0][-120:]}); resume with resume=true") from None
    print(f"final model: {run_dir / 'final'}")
    return 0


def cmd_sample(args) -> int:
    from seppo.models import eval_seeds, grid, load_for_sampling, sample

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
    from seppo.api import evaluate_models

    result = evaluate_models(args.models, prompts=args.prompts, judges=args.judges.split(","),
                             judge_paths=_judge_paths(args.judge_path), seeds=[int(s) for s in args.seeds.split(",")],
                             per_prompt=args.per_prompt, steps=args.steps, guidance=args.guidance,
                             out=Path(args.out) if args.out else None, update_cards=not args.no_card)
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
    from seppo.demo import run_demo
    from seppo.demo_video import run_video_demo

    if args.video:
        run_video_demo(Path(args.out), quick=args.quick)
    else:
        run_demo(Path(args.out), quick=args.quick, retrain=args.retrain)
    return 0


def cmd_report(args) -> int:
    from seppo.evaluate import EvalResult
    from seppo.prompts import load_prompts
    from seppo.report import write_report

    result = EvalResult.read(Path(args.eval)) if args.eval else None
    path = write_report([Path(r) for r in args.runs], Path(args.out), eval_result=result,
                        prompts=load_prompts(args.prompts) if args.prompts else None, seed=args.seed,
                        steps=args.steps, guidance=args.guidance, title=args.title)
    print(f"wrote {path}")
    return 0


def cmd_benchmark(args) -> int:
    import dataclasses

    from seppo.benchmark import default_plan, run_benchmark

    plan = default_plan(args.video, args.quick)  # the world's own grid, judges, arms and evaluation
    given = {"seeds": args.seeds, "tune_seeds": args.tune_seeds}
    if not args.tune:  # seppo ablate: every arm at the config's own settings, 3 seeds unless told
        given = {**given, "tune": False, "arms": list(ARMS), "seeds": args.seeds or 3, "guidances": []}
    if args.arms:
        given["arms"] = [a.strip() for a in args.arms.split(",")]
    guidances = getattr(args, "guidances", None)
    if guidances is not None:
        try:
            given["guidances"] = [] if guidances.strip().lower() == "none" else [float(g) for g in guidances.split(",")]
        except ValueError:
            raise SeppoError(f"--guidances: expected comma-separated numbers or 'none', got {guidances!r}") from None
    plan = dataclasses.replace(plan, **{k: v for k, v in given.items() if v is not None})
    unknown = [a for a in plan.arms if a not in ARMS]
    if unknown:
        raise SeppoError(f"--arms: unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    path = run_benchmark(args.config, args.overrides, out=Path(args.out), plan=plan, quick=args.quick, jobs=args.jobs,
                         video=args.video)
    print(f"wrote {path}")
    return 0


def cmd_diagnose(args) -> int:
    from seppo.diagnose import diagnose_flipper
    from seppo.prompts import load_prompts

    result = diagnose_flipper(Path(args.run), prompts=load_prompts(args.prompts), judge=args.judge,
                              flipper_draws=args.flipper_draws)
    print(json.dumps(result, indent=1))
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help line ends with its default: "(default: 8)", "(default: off)"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        return f"{text} (default: {action.default!r})" if isinstance(action.default, str) else f"{text} (default: %(default)s)"


def _parser(sub, name: str, help_: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=help_[:1].upper() + help_[1:] + ".",
                          formatter_class=HelpFormatter)


def _config_arguments(s: argparse.ArgumentParser, config_help: str) -> None:
    s.add_argument("config", help=config_help)
    s.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value",
                   help="config overrides, applied after the file (none by default), e.g. train.lr=1e-5 method=sft")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seppo", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"seppo {__version__}", help="print the version and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _parser(sub, "pretrain", "train the embedded base model from scratch")
    _config_arguments(s, "YAML config; its pretrain.* section sizes the model and data (configs/digits-seppo.yaml)")
    s.set_defaults(fn=cmd_pretrain)

    s = _parser(sub, "train", "align a model (method: seppo, sft, dpo, spin, ditto) and export RUN/final")
    _config_arguments(s, "YAML config (configs/*.yaml); every field is documented in src/seppo/config.py")
    s.set_defaults(fn=cmd_train)

    s = _parser(sub, "sample", "write a PNG grid of samples, one row per prompt")
    s.add_argument("model", help="a run directory, a diffusers folder, or BASE+LORA")
    s.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for more rows; required)")
    s.add_argument("--n", type=int, default=8, help="samples per prompt")
    s.add_argument("--seed", type=int, default=0, help="evaluation seed: the noise keys, as seppo eval --seeds")
    s.add_argument("--steps", type=int, default=20, help="DDIM steps")
    s.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    s.add_argument("--resolution", type=int, default=0, help="pixels per side (0: the model's native size)")
    s.add_argument("--out", default="samples.png", help="the PNG to write")
    s.set_defaults(fn=cmd_sample)

    s = _parser(sub, "eval", "score models with judges on shared noise keys; print a table with 95%% intervals")
    s.add_argument("models", nargs="+", metavar="MODEL", help="run directories, diffusers folders, or BASE+LORA")
    s.add_argument("--prompts", default="digits", help="prompt set: digits | moving-digits | pickapic:PATH | "
                   "parti:PATH | hps:PATH | FILE.txt")
    s.add_argument("--judges", default="digit", help="comma-separated judges: digit, pickscore, hps, hpsv2.1, "
                   "aesthetic, clip, imagereward, video-digit, motion, consistency, …")
    s.add_argument("--judge-path", action="append", default=[], metavar="JUDGE.KEY=PATH",
                   help="local weights of a judge, e.g. pickscore.model=DIR (repeatable; none by default)")
    s.add_argument("--seeds", default="0,1,2", help="comma-separated evaluation seeds; each gives every prompt "
                   "--per-prompt noise keys, shared by all models")
    s.add_argument("--per-prompt", type=int, default=8, help="samples per prompt and seed")
    s.add_argument("--steps", type=int, default=20, help="DDIM steps per sample")
    s.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    s.add_argument("--out", default="", help="folder for scores.parquet, eval.md, eval.json and sample grids "
                   "(empty: print the table only)")
    s.add_argument("--no-card", action="store_true", help="leave the model cards (RUN/final/README.md) of "
                   "evaluated runs as they are; by default their Evaluation section becomes this table")
    s.set_defaults(fn=cmd_eval)

    s = _parser(sub, "demo", "the embedded default end to end: base, SFT, DPO and SePPO, evaluation, report")
    s.add_argument("--quick", action="store_true", help="a seconds-long smoke run of every stage")
    s.add_argument("--video", action="store_true", help="the moving-digits text-to-video default instead")
    s.add_argument("--out", default="demo-out", help="output folder (report.html, runs/, eval/)")
    s.add_argument("--retrain", action="store_true",
                   help="train every method again, even where --out holds its finished run with the same config")
    s.set_defaults(fn=cmd_demo)

    s = _parser(sub, "report", "one self-contained HTML report of runs: results first, then samples side by side, "
                "curves, the pool and the config")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    s.add_argument("--out", default="report.html", help="the HTML file to write (a folder gets report.html)")
    s.add_argument("--eval", default="", metavar="DIR", help="a folder written by seppo eval --out: its table "
                   "becomes the headline and its models the side-by-side columns (empty: no evaluation)")
    s.add_argument("--prompts", default="", help="prompt set for the grids, as in seppo eval (empty: the evaluation's, "
                   "else the ten digits for embedded runs)")
    s.add_argument("--seed", type=int, default=0, help="evaluation seed whose noise keys the grids use")
    s.add_argument("--steps", type=int, default=20, help="DDIM steps of the grids' samples (an evaluation's own with --eval)")
    s.add_argument("--guidance", type=float, default=3.0, help="guidance of the grids' samples (an evaluation's own with --eval)")
    s.add_argument("--title", default="seppo report", help="the page's title")
    s.set_defaults(fn=cmd_report)

    for name, help_, seeds, tune in (
            ("benchmark", "tune each method on validation keys, then every arm × training seed; seed-level tables "
             "and an HTML report", "8; 5 with --video", True),
            ("ablate", "every arm × training seed at the config's own settings (no tuning); seed-level tables and "
             "an HTML report", "3", False)):
        s = _parser(sub, name, help_)
        _config_arguments(s, "YAML config of the embedded world (configs/digits-seppo.yaml)")
        s.add_argument("--video", action="store_true",
                       help="the video world of `seppo demo --video` (Moving Digits: a video model trained from the config's "
                            "image base, the 40 digit × direction prompts, the video judges) instead of Pick-a-Digit")
        s.add_argument("--seeds", type=int, default=None, help=f"final training seeds per arm (default: {seeds})")
        s.add_argument("--tune-seeds", type=int, default=None,
                       help="training seeds per tuning grid point (default: 2; 1 with --video)")
        s.add_argument("--arms", default="", help="comma-separated arms to run (default: all of " + ",".join(ARMS)
                       + "; with --video base,sft,dpo,seppo,seppo-noflip)")
        s.add_argument("--jobs", type=int, default=2, help="training runs at a time (one thread each)")
        s.add_argument("--quick", action="store_true", help="seconds-long runs on a toy world (smoke test)")
        s.add_argument("--out", default=name, help="output folder")
        if tune:
            s.add_argument("--guidances", default=None,
                           help="comma-separated guidance scales each arm's own is chosen from on validation keys, for "
                                "the guidance-aware table; 'none' skips that phase (default: 2,2.5,3,3.5,4; none with "
                                "--video)")
        s.set_defaults(fn=cmd_benchmark, tune=tune)

    s = _parser(sub, "diagnose-flipper", "the flipper's verdicts on reference samples against a judge's")
    s.add_argument("run", help="a run directory with its pool")
    s.add_argument("--prompts", default="digits", help="held-out prompt set, as in seppo eval")
    s.add_argument("--judge", default="digit", help="the judge whose verdict is the truth")
    s.add_argument("--flipper-draws", type=int, default=1, help="Monte Carlo (t, ε) draws the flipper averages")
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
