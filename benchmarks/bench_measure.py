"""Measuring for `bench_update.py`: what one update costs, phase by phase.

Every phase is timed by `timed` (median and spread over repeats, after warm-up calls) and its
floating-point operations are counted once, in eager mode, by `count_flops`. A `Variant` is the
whole update and its parts as callables over inputs prepared once; `measure` times it and
derives pairs/s, samples/s and the share of the measured matmul ceiling.
"""

from __future__ import annotations

import gc
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Settings:
    """The work of one update (not the way it is done)."""

    pairs: int = 16  # prompts per update, each with its winner and one reference sample
    micro_pairs: int = 0  # pairs per micro-batch (0: all pairs in one)
    steps: int = 20  # DDIM steps of reference generation
    guidance: float = 7.5  # classifier-free guidance scale
    repeats: int = 3  # timed calls per phase
    warmup: int = 1  # untimed calls per phase first (compiling happens here)

    @property
    def micro(self) -> int:
        return self.micro_pairs or self.pairs


def micro_slices(s: Settings) -> list[slice]:
    return [slice(i, min(i + s.micro, s.pairs)) for i in range(0, s.pairs, s.micro)]


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    """GPU: peak allocated since the last reset. CPU: the process's peak RSS so far (never resets)."""
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "memory_kind": "cuda_max_allocated"}
    return {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "memory_kind": "cpu_peak_rss"}


def clock(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def timed(fn: Callable[[], object], *, repeats: int, warmup: int, device: torch.device) -> dict:
    """Median and spread of `repeats` calls after `warmup` untimed ones, and the peak memory."""
    first = [clock(fn, device) for _ in range(warmup)]
    reset_peak_memory(device)
    times = [clock(fn, device) for _ in range(repeats)]
    q0, q1, q2, q3, q4 = np.percentile(times, [0, 25, 50, 75, 100]).tolist()
    return {"median_s": q2, "q1_s": q1, "q3_s": q3, "min_s": q0, "max_s": q4, "repeats": repeats,
            "first_call_s": first[0] if first else None, **peak_memory(device)}


def count_flops(fn: Callable[[], object], device: torch.device) -> int:
    """Floating-point operations of one call (matmul, convolution, attention; CPU attention is not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    synchronize(device)
    return int(counter.get_total_flops())


def matmul_ceiling(device: torch.device) -> dict:
    """The measured matrix-product rate: 8192³ bf16 on a GPU, 1024³ fp32 on the CPU."""
    n, dtype, repeats = (8192, torch.bfloat16, 10) if device.type == "cuda" else (1024, torch.float32, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    stats = timed(lambda: a @ b, repeats=repeats, warmup=3, device=device)
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "tflops": 2 * n**3 / stats["median_s"] / 1e12, **stats}


def optimizer_phase(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """One optimizer step over gradients that exist (zeros where an update already cleared them),
    so the step does its full work whichever phase ran before."""
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def step():
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        optimizer.step()

    return step


@dataclass
class Variant:
    """Callables for the whole update and its parts, over inputs prepared once."""

    name: str
    pairs: int
    phases: dict[str, Callable[[], object]]  # "update" first, then its parts
    context: Callable[[], object] = nullcontext  # entered around every call (autocast)
    info: dict = field(default_factory=dict)

    def call(self, phase: str) -> Callable[[], object]:
        def run():
            with self.context():
                return self.phases[phase]()

        return run


def variant_flops(make: Callable[[Settings], Variant], s: Settings, device: torch.device) -> dict:
    """FLOPs of each phase, counted once in eager mode. Generation is counted at 1 and 2 steps and
    extrapolated (every step does the same work); the update is the sum of its parts."""
    one, two = make(replace(s, steps=1)), make(replace(s, steps=2))
    first = count_flops(one.call("generate"), device)
    per_step = count_flops(two.call("generate"), device) - first
    flops = {n: count_flops(one.call(n), device) for n in one.phases if n not in ("update", "generate")}
    flops["generate"] = first + (s.steps - 1) * per_step
    flops["update"] = sum(flops.values())  # AdamW has no matmuls: the optimizer counts 0
    return flops


def measure(variant: Variant, s: Settings, device: torch.device, *, ceiling_tflops: float, flops: dict,
            phases: tuple[str, ...] | None = None) -> dict:
    """Time each phase (the update and those in `phases`, or all); derive rates and shares of the ceiling."""
    names = [n for n in variant.phases if phases is None or n == "update" or n in phases]
    compiled = variant.info.get("levers", {}).get("compile", "none") != "none"
    out = {"name": variant.name, "info": variant.info, "flops": flops, "phases": {}}
    for name in names:
        stats = timed(variant.call(name), repeats=s.repeats, warmup=s.warmup, device=device)
        stats["tflops"] = flops[name] / stats["median_s"] / 1e12
        stats["ceiling_share"] = stats["tflops"] / ceiling_tflops if ceiling_tflops else None
        out["phases"][name] = stats
    update = out["phases"]["update"]
    # The first update call compiles every graph the update uses; the parts reuse them.
    out["compile_s"] = max(0.0, update["first_call_s"] - update["median_s"]) if compiled and update["first_call_s"] else None
    return {**out, **rates(out["phases"], flops, variant.pairs, ceiling_tflops)}


def rates(phases: dict, flops: dict, pairs: int, ceiling_tflops: float) -> dict:
    """Pairs/s of the update, samples/s of generation, and the training phases' share of the ceiling."""
    out = {"pairs_per_s": pairs / phases["update"]["median_s"]}
    if "generate" in phases:
        out["samples_per_s"] = pairs / phases["generate"]["median_s"]
    training = [n for n in ("policy_fwd_bwd", "reference_fwd") if n in phases]
    if len(training) == 2:
        seconds = sum(phases[n]["median_s"] for n in training)
        out["training_tflops"] = sum(flops[n] for n in training) / seconds / 1e12
        out["training_ceiling_share"] = out["training_tflops"] / ceiling_tflops if ceiling_tflops else None
    return out


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
