"""`benchmarks/bench_update.py`: time one SePPO update and its parts, our path against a plain one.

    PYTHONPATH=src python benchmarks/bench_update.py --preset tiny --out benchmarks/out
    PYTHONPATH=src python benchmarks/bench_update.py --preset sd15 --try compile=reference --memory-modes lora full

One process, one run (issue 6), in this order, each section written to the JSON as it ends:

    ceiling    a large matrix product (bf16 on a GPU, fp32 on the CPU): the rate to compare with
    plain      the update written the way the public Diffusion-DPO example works (bench_variants.py)
    optimized  training's own update: `seppo.policy.setup_policy` + `seppo.update.update_losses`
               on cached text embeddings and latents, set up from a training config
    levers     the optimized variant with training config fields changed (`--try key=value ...`;
               the keys are `train.*` fields: mixed_precision, mode, compile)
    memory     peak memory for LoRA and full fine-tuning at a few per-device batches, with a pool
               of 7 snapshots of the trainable weights on the CPU

Both variants split the update into micro-batches of `--micro-pairs` pairs with gradient
accumulation, as the training loop does; generation runs per micro-batch in both. Measuring:
bench_measure.py; the models: bench_models.py; what the numbers say: README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import diffusers
import torch
import transformers
from bench_measure import Settings, free, matmul_ceiling, measure, variant_flops
from bench_models import PRESETS, Parts
from bench_variants import (
    LEVERS,
    apply_compile,
    build_optimized,
    build_plain,
    fit_micro_pairs,
    memory_probe,
    optimized_variant,
    plain_variant,
    training_config,
)

from seppo.config import Config


def lever_changes(item: str) -> dict[str, str]:
    """`mode=lora` or `compile=reference,mixed_precision=no` → {train field: value}."""
    changes = dict(change.partition("=")[::2] for change in item.split(","))
    unknown = sorted(set(changes) - set(LEVERS))
    if unknown:
        raise ValueError(f"not a lever: {', '.join(unknown)} (levers: the train fields {', '.join(LEVERS)})")
    return changes


def lever_phases(item: str) -> tuple[str, ...]:
    """The phases that the levers changed in a trial item can affect."""
    return tuple(dict.fromkeys(p for k in lever_changes(item) for p in LEVERS[k]))


# --------------------------------------------------------------------------- the run


class Report:
    """The JSON written after every section, so a run cut short still leaves its numbers."""

    def __init__(self, path: Path, data: dict, deadline: float):
        self.path, self.data, self.deadline = path, data, deadline

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, fn: Callable[[], object], *, estimate_s: float = 0.0):
        """Run one section unless the budget is short; record its result or its error."""
        if estimate_s > self.remaining():
            self.data["skipped"].append({"section": name, "reason": f"needs ~{estimate_s:.0f} s, {self.remaining():.0f} s left"})
            print(f"[bench] skip {name}: needs ~{estimate_s:.0f} s, {self.remaining():.0f} s left", flush=True)
            self.write()
            return None
        print(f"[bench] {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # a section that fails (OOM, compile error) must not lose the others
            self.data["errors"][name] = f"{type(e).__name__}: {str(e)[:500]}"
            print(f"[bench] {name} failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}", flush=True)
            result = None
        self.data["section_seconds"][name] = round(time.monotonic() - t0, 2)
        self.write()
        return result

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def meta(args, device: torch.device) -> dict:
    commit = args.commit
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                    cwd=Path(__file__).parent).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown"
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": card, "commit": commit,
            "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "load_average_1_5_15": os.getloadavg(), "argv": vars(args)}


def run(args) -> dict:
    """Every section in order; the JSON is rewritten after each."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    s = Settings(pairs=args.pairs, micro_pairs=0 if args.micro_pairs == "auto" else int(args.micro_pairs),
                 steps=args.steps, guidance=args.guidance, repeats=args.repeats, warmup=args.warmup)
    levers = {"mixed_precision": args.mixed_precision or ("bf16" if device.type == "cuda" else "no"), "mode": args.mode,
              "compile": args.compile}
    cfg = training_config(s, levers)
    report = Report(Path(args.out) / "bench.json", {"meta": meta(args, device), "preset": args.preset,
                    "settings": dataclasses.asdict(s), "levers": levers, "skipped": [], "errors": {},
                    "section_seconds": {}, "levers_tried": {}, "memory": {}}, time.monotonic() + args.budget_s)
    data = report.data
    parts = PRESETS[args.preset](device, Path(tempfile.mkdtemp(prefix="seppo-bench-")))
    data["ceiling"] = report.section("ceiling", lambda: matmul_ceiling(device)) or {"tflops": 0.0}
    if args.micro_pairs == "auto":
        s.micro_pairs = report.section("fit micro-batch", lambda: fit_micro_pairs(parts, cfg, s)) or 1
        data["settings"] = dataclasses.asdict(s)
    optimized = OptimizedRuns(parts, s, data["ceiling"]["tflops"])

    # ─── the gate: plain and optimized, same process, same settings ───
    if args.plain:
        bf16 = levers["mixed_precision"] == "bf16"
        data["plain"] = report.section("plain", lambda: run_plain(parts, s, bf16, data["ceiling"]["tflops"]))
        free(device)
    data["optimized"] = report.section("optimized", lambda: optimized.run(cfg, "optimized"))
    set_ratio(data, "optimized")
    update_s = ((data["optimized"] or {}).get("phases") or {}).get("update", {}).get("median_s", 1.0)

    # ─── memory: LoRA and full at a few per-device batches, pool of 7 on the CPU ───
    for mode in args.memory_modes:
        estimate = 3 * update_s * sum(args.memory_batches) / s.pairs + (30 if device.type == "cuda" else 1)
        mode_cfg = training_config(s, {**levers, "mode": mode})
        data["memory"][mode] = report.section(f"memory {mode}", lambda c=mode_cfg: memory_probe(
            parts, c, args.memory_batches, s), estimate_s=estimate)

    # ─── levers: one trial per item, each changing training config fields of the optimized variant ───
    for item in args.try_levers:
        trial = training_config(s, {**levers, **lever_changes(item)})
        compile_s = {"none": 0, "reference": args.compile_estimate_s[0], "all": sum(args.compile_estimate_s)}[trial.train.compile]
        estimate = 2.5 * (s.warmup + s.repeats) * update_s + compile_s
        data["levers_tried"][item] = report.section(
            f"lever {item}", lambda c=trial, i=item: optimized.run(c, i, lever_phases(i)), estimate_s=estimate)
        set_ratio(data, item)
    data["summary_markdown"] = markdown(data)
    report.write()
    return data


def run_plain(parts: Parts, s: Settings, bf16: bool, ceiling_tflops: float) -> dict:
    model = build_plain(parts, bf16)
    flops = variant_flops(lambda settings: plain_variant(model, settings, parts), s, parts.device)
    return measure(plain_variant(model, s, parts), s, parts.device, ceiling_tflops=ceiling_tflops, flops=flops)


class OptimizedRuns:
    """Builds, measures and frees one optimized variant per call; FLOPs counted once per
    `train.mode`, in eager mode before any compile, since the other levers leave them unchanged."""

    def __init__(self, parts: Parts, s: Settings, ceiling_tflops: float):
        self.parts, self.s, self.ceiling_tflops, self.flops = parts, s, ceiling_tflops, {}

    def run(self, cfg: Config, name: str, phases: tuple[str, ...] | None = None) -> dict:
        device = self.parts.device
        model = build_optimized(self.parts, cfg)
        variant = optimized_variant(model, self.s, self.parts, name)
        key = cfg.train.mode
        if key not in self.flops:
            self.flops[key] = variant_flops(lambda settings: optimized_variant(model, settings, self.parts), self.s, device)
        apply_compile(model)
        try:
            return measure(variant, self.s, device, ceiling_tflops=self.ceiling_tflops, phases=phases,
                           flops=self.flops[key])
        finally:
            model = variant = None  # drop the references before freeing (closures hold them too)
            free(device)


def set_ratio(data: dict, name: str) -> None:
    """optimized/plain = plain median update time / this variant's median update time."""
    plain = (data.get("plain") or {}).get("phases", {}).get("update")
    other = data["optimized"] if name == "optimized" else data["levers_tried"].get(name)
    mine = (other or {}).get("phases", {}).get("update")
    if plain and mine:
        other["ratio_vs_plain"] = plain["median_s"] / mine["median_s"]


# --------------------------------------------------------------------------- the table


def _fmt(x, spec: str = ".3g", scale: float = 1.0) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x * scale, spec)


def markdown(data: dict) -> str:
    """The short table: one row per variant, then the memory probes."""
    rows = [("plain", data.get("plain")), ("optimized", data.get("optimized")), *data["levers_tried"].items()]
    gib = 1 / 2**30
    lines = [f"{data['meta']['date']} · {data['meta']['device']} · commit {data['meta']['commit'][:12]} · preset "
             f"{data['preset']} · {data['settings']['pairs']} pairs, {data['settings']['steps']}-step DDIM, guidance "
             f"{data['settings']['guidance']} · ceiling {_fmt(data.get('ceiling', {}).get('tflops'))} TFLOP/s", "",
             "| variant | update s (IQR) | pairs/s | × plain | gen samples/s | gen TFLOP/s (share) | train TFLOP/s (share) | peak mem GiB | compile s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        if not r:
            lines.append(f"| {name} | failed or skipped | | | | | | | |")
            continue
        u, g = r["phases"]["update"], r["phases"].get("generate", {})
        lines.append(f"| {name} | {_fmt(u['median_s'])} ({_fmt(u['q1_s'])}–{_fmt(u['q3_s'])}) | {_fmt(r['pairs_per_s'])} | "
                     f"{_fmt(r.get('ratio_vs_plain'), '.2f')} | {_fmt(r.get('samples_per_s'))} | {_fmt(g.get('tflops'))} "
                     f"({_fmt(g.get('ceiling_share'), '.0%')}) | {_fmt(r.get('training_tflops'))} "
                     f"({_fmt(r.get('training_ceiling_share'), '.0%')}) | {_fmt(u['peak_memory_bytes'], '.2f', gib)} | "
                     f"{_fmt(r.get('compile_s'), '.0f')} |")
    if any(data["memory"].values()):
        lines += ["", "| mode | per-device pairs | peak mem GiB | pool of 7 on CPU GiB | reference switch s |", "|---|---|---|---|---|"]
        for mode, m in data["memory"].items():
            for b, row in (m or {}).get("batches", {}).items():
                lines.append(f"| {mode} | {b} | {_fmt(row['peak_memory_bytes'], '.2f', gib)} | "
                             f"{_fmt(m['pool_bytes'], '.2f', gib)} | {_fmt(m['reference_switch_s'])} |")
    for item in data["skipped"]:
        lines.append(f"\nskipped {item['section']}: {item['reason']}")
    for name, err in data["errors"].items():
        lines.append(f"\nerror in {name}: {err}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench_update", description=__doc__.splitlines()[0])
    on_off = argparse.BooleanOptionalAction
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--micro-pairs", default="0",
                   help="pairs per micro-batch: 0 = all, or auto = the most that fit in 80%% of the GPU")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                   help="train.mixed_precision: autocast and the frozen reference's dtype (default: bf16 with CUDA)")
    p.add_argument("--mode", choices=("full", "lora"), default="full", help="train.mode")
    p.add_argument("--compile", choices=("none", "reference", "all"), default="none", help="train.compile")
    p.add_argument("--compile-estimate-s", type=float, nargs=2, default=(90.0, 200.0), metavar=("GEN", "TRAIN"),
                   help="budgeted compile seconds of the generation and the training graphs")
    p.add_argument("--plain", action=on_off, default=True, help="also run the plain variant")
    p.add_argument("--try", dest="try_levers", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="one trial per item with train fields changed, e.g. mixed_precision=no mode=lora compile=reference")
    p.add_argument("--memory-modes", nargs="*", default=[], choices=("full", "lora"))
    p.add_argument("--memory-batches", type=int, nargs="*", default=[1, 4])
    p.add_argument("--budget-s", type=float, default=3600.0, help="skip sections that would end past this")
    p.add_argument("--commit", default="", help="the commit measured, where the tree has no .git")
    p.add_argument("--out", default="/tmp/seppo-bench", help="folder for bench.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for item in args.try_levers:
        lever_changes(item)  # a wrong lever stops before any measuring
    threads = os.environ.get("SEPPO_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    data = run(args)
    print(data["summary_markdown"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
