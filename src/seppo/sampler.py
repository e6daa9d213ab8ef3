"""Batched generation in model space with classifier-free guidance, no gradient.

Reference samples x^ref (DESIGN.md §1, step 2.2.2) never leave model space: a latent model
never decodes and re-encodes them. Initial noise x_T and DDIM's η-noise are drawn per sample
from streams keyed by the global sample index (seppo.rng), so a sample depends only on its
prompt, its index and the model, not on batch size or process count.

| code        | paper                                  |
|-------------|----------------------------------------|
| `x`         | x_t, the sample being denoised         |
| `guidance`  | w, the classifier-free guidance scale  |
| `eps_hat`   | ε̂ = ε_∅ + w·(ε_c − ε_∅) (or v̂, same form) |
"""

from __future__ import annotations

import weakref
from typing import Sequence

import torch
from diffusers import DDIMScheduler

from seppo import rng
from seppo.backbone import Backbone

_SCHEDULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # noise schedule → {steps: (DDIM, timesteps)}


def ddim_schedule(backbone: Backbone, steps: int) -> tuple[DDIMScheduler, list[int]]:
    """DDIM with trailing timestep spacing over the backbone's noise schedule, and its timesteps
    as Python ints. Built once per (noise schedule, steps), since DDIM's step keeps no state:
    integer timesteps keep generation free of host syncs (DDIM compares a tensor timestep on
    the device at every step)."""
    per_steps = _SCHEDULES.setdefault(backbone.scheduler, {})
    if steps not in per_steps:
        scheduler = DDIMScheduler.from_config(backbone.scheduler.config, timestep_spacing="trailing")
        scheduler.set_timesteps(steps)  # on the CPU, read once here
        per_steps[steps] = (scheduler, scheduler.timesteps.tolist())
    return per_steps[steps]


@torch.no_grad()
def generate(
    backbone: Backbone,
    cond: dict[str, torch.Tensor],
    *,
    shape: Sequence[int],
    seed: int,
    step: int,
    indices: Sequence[int],
    steps: int,
    guidance: float,
    eta: float = 0.0,
    stream: str = "sampler",
) -> torch.Tensor:
    """Generate one sample per row of `cond` with the backbone's active model → (B, *shape)."""
    device = backbone.device
    batch = len(indices)
    scheduler, timesteps = ddim_schedule(backbone, steps)
    # 1. x_T ~ N(0, I), per sample.
    x = rng.per_sample_randn(shape, seed=seed, stream=stream, key=step, indices=indices, device=device)
    x = x * scheduler.init_noise_sigma
    if backbone.is_sdxl and "time_ids" not in cond:  # generation convention: uncropped, at the sample's size
        res = shape[-1] * backbone.vae_scale_factor
        cond = dict(cond, time_ids=backbone.time_ids(torch.tensor([[res, res]]).expand(batch, 2),
                                                     torch.zeros(batch, 2, dtype=torch.long), res).to(device))
    guided = guidance != 1.0
    if guided:
        null = backbone.null_cond(batch, for_guidance=True)
        both = {k: torch.cat([null.get(k, cond[k]).to(device), cond[k].to(device)]) for k in cond}  # (2B, ...): ∅ first, then c
    for i, t in enumerate(timesteps):
        t_batch = torch.full((batch,), t, device=device)
        # 2. ε̂ = ε_∅ + w·(ε_c − ε_∅), one UNet call on the stacked batch.
        if guided:
            out = backbone.predict(torch.cat([x, x]), torch.cat([t_batch, t_batch]), both)  # (2B, ...)
            out_null, out_cond = out.chunk(2)  # (B, ...) each: unconditional, then conditional
            out = out_null + guidance * (out_cond - out_null)
        else:
            out = backbone.predict(x, t_batch, cond)
        # 3. One DDIM step x_t → x_{t−1}; η > 0 adds per-sample noise of its own stream, keyed by (step, i).
        variance_noise = None
        if eta > 0:
            variance_noise = rng.per_sample_randn(shape, seed=seed, stream=f"{stream}_eta", key=(step, i),
                                                  indices=indices, device=device)
        x = scheduler.step(out, t, x, eta=eta, variance_noise=variance_noise).prev_sample
    return x
