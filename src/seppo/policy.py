"""The policy's set-up from `cfg.train`: what trains, the reference beside it, its optimizer.

Shared by `seppo.train` and `benchmarks/bench_update.py`, so the benchmark times the update
that training runs. `torch.compile` (`train.compile`) is applied by the caller afterwards:
the benchmark counts floating-point operations in eager mode first.
"""

from __future__ import annotations

import torch

from seppo.backbone import Backbone, expected_warnings_silenced
from seppo.config import TrainConfig
from seppo.errors import SeppoError
from seppo.sharding import shard_unet

# train.mixed_precision → the dtype of weights that never train (the frozen reference copy)
FROZEN_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def setup_policy(backbone: Backbone, t: TrainConfig, *, frozen_dtype: torch.dtype = torch.float32,
                 shard: bool = False):
    """Make the chosen weights trainable (full, LoRA, or the motion modules), build the
    reference beside them, shard the policy with `shard` (FSDP, `train.sharding`), and return
    (trainable parameters, optimizer)."""
    backbone.setup_training(t.mode, lora_rank=t.lora_rank, lora_alpha=t.lora_alpha, lora_targets=t.lora_targets,
                            train_motion_only=t.train_motion_only)
    if t.gradient_checkpointing:
        backbone.unet.enable_gradient_checkpointing()
    if backbone.reference_unet is not None and frozen_dtype != torch.float32:
        with expected_warnings_silenced():
            backbone.reference_unet.to(dtype=frozen_dtype)  # bf16/fp16 reference weights: it never trains
    if shard:  # after the reference's copy (it stays whole on every process) and before the optimizer sees the parameters
        shard_unet(backbone.unet)
    params = [p for _, p in backbone.trainable_named_parameters()]
    return params, make_optimizer(t, params)


def make_optimizer(t: TrainConfig, params) -> torch.optim.Optimizer:
    """AdamW (fused on a GPU), or bitsandbytes' 8-bit AdamW with `train.use_8bit_adam`."""
    if t.use_8bit_adam:
        try:
            import bitsandbytes as bnb  # optional dependency, imported only when asked for
        except ImportError:
            raise SeppoError("train.use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from None
        return bnb.optim.AdamW8bit(params, lr=t.lr, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.weight_decay,
                             fused=torch.cuda.is_available())
