"""Atomic, rotated checkpoints: everything that decides the future of a run.

`checkpoints/step-N/` holds the trainable weights (safetensors), the optimizer and LR
schedule states, the EMA weights when `train.ema_decay` > 0, and `state.json` (update counter, reference pool size and draw history,
the reference in use, the data order's position, the bad-step counter). The reference
pool's snapshots live in the run's `pool/` (written once each). Per-sample random draws are
keyed by (seed, step, index) (seppo.rng), so they need no saved state.

Under `train.sharding: fsdp` the files are the same, whole: the weights and the EMA as above,
the optimizer state keyed by parameter name (torch.distributed.checkpoint's full state dict),
and `state.json` says `"sharded": true`.

A checkpoint is written into `step-N.tmp`, flushed, then renamed: a folder named `step-N`
is always complete, and a `.tmp` left by a killed process is never read (and is removed by
the next save). Rotation keeps the newest `keep_last` complete ones.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS, OPTIMIZER, SCHEDULER, STATE, EMA = "trainable.safetensors", "optimizer.pt", "scheduler.pt", "state.json", "ema.pt"


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _state(holder) -> dict:
    """`holder.state_dict()`, or a state dict given as such: a sharded run's, gathered whole
    beforehand on every process (seppo.sharding), since only the main process writes."""
    return holder if isinstance(holder, dict) else holder.state_dict()


def save_checkpoint(run_dir: Path, step: int, *, weights: dict[str, torch.Tensor], optimizer, scheduler,
                    state: dict, keep_last: int, ema=None) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step}"
    tmp = root / f"step-{step}.tmp"
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS))
    torch.save(_state(optimizer), tmp / OPTIMIZER)
    torch.save(scheduler.state_dict(), tmp / SCHEDULER)
    if ema is not None:
        torch.save(_state(ema), tmp / EMA)
    (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1))
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp")
             and (p / STATE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def load_checkpoint(folder: Path) -> dict:
    return {
        "weights": load_file(str(folder / WEIGHTS)),
        "optimizer": torch.load(folder / OPTIMIZER, weights_only=False),
        "scheduler": torch.load(folder / SCHEDULER, weights_only=False),
        "state": json.loads((folder / STATE).read_text()),
        "ema": torch.load(folder / EMA, weights_only=False) if (folder / EMA).exists() else None,
    }
