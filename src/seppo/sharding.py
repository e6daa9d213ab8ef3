"""FSDP for the policy UNet (`train.sharding: fsdp`): shard it, gather it whole, shard it again.

torch's FSDP2 (`fully_shard`) is used directly: accelerate ignores its own FSDP on the CPU,
and FSDP2 runs on the CPU with gloo. `fully_shard` swaps each parameter, in place, for a
DTensor holding this process's shard, so parameter names stay. The pool, the checkpoints and
the export therefore keep their layout and hold whole tensors, gathered from the shards:

| function                  | collective? | what                                                   |
|---------------------------|-------------|--------------------------------------------------------|
| `shard_unet`              | no          | `fully_shard` each down/mid/up block, then the root    |
| `whole`                   | yes         | a shard gathered into the whole tensor (else as is)    |
| `shard_like`              | no          | a whole tensor cut to this process's shard of `like`   |
| `whole_optimizer_state`   | yes         | the optimizer's state, whole, keyed by parameter name; on the main process only |
| `load_optimizer_state`    | no          | that state, cut to this process's shards               |
| `whole_ema_state`         | yes         | diffusers' `EMAModel` state with whole shadow weights  |
| `shard_ema`               | no          | its shadow weights cut back to shards after loading    |

A collective must be called by every process, in the same order; only the main process
writes what it returns. Loading is local: every process reads the same checkpoint files.
"""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor


def shard_unet(unet: torch.nn.Module) -> None:
    """Per block, so a forward gathers one block's weights at a time; the root takes the rest
    (conv_in/out, time embedding). Build the optimizer afterwards: the parameters are new."""
    blocks = [*getattr(unet, "down_blocks", []), getattr(unet, "mid_block", None), *getattr(unet, "up_blocks", [])]
    for block in blocks:
        if block is not None:
            fully_shard(block)
    fully_shard(unet)


def whole(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(like: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """`full` as `like` is laid out. Every process holds the same `full` (read from the same
    file), so each cuts its own shard without communicating (`src_data_rank=None`)."""
    if not isinstance(like, DTensor):
        return full
    return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements, src_data_rank=None)


def whole_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole, on the main process's CPU
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def whole_ema_state(ema) -> dict:
    return {**ema.state_dict(), "shadow_params": [whole(s).cpu() for s in ema.shadow_params]}


def shard_ema(ema, params: list[torch.Tensor]) -> None:
    ema.shadow_params = [shard_like(p, s) for p, s in zip(params, ema.shadow_params)]
