"""One micro-batch of an update: the sampling phase, then the training phase (DESIGN.md §1, step 2.2).

    ─── sampling phase ───  the second half x^other: reference samples from π_ref (no grad,
                            guided, in model space), the data's losers, or none (SFT)
    ─── training phase ───  one t and ε per pair → e_θ and e_ref on both halves → the loss

The method decides both through `seppo.methods.METHODS` (where the second half comes from,
which loss) and `seppo.losses.LOSSES`; nothing here names a method. Every per-sample draw is
keyed by the samples' global indices (`keys`) and the update (seppo.rng).

| code          | paper                                              |
|---------------|----------------------------------------------------|
| `x_w`         | x^w, the winners (B, ...)                          |
| `x0`          | [x^w; x^other] stacked on dim 0, (2B, ...) (SFT: x^w) |
| `t`, `eps`    | t and ε, shared by a winner and its other half     |
| `policy_err`  | e_θ(x0), (2B,)                                     |
| `ref_err`     | e_ref(x0), (2B,)                                   |
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from seppo import rng, shared_samples
from seppo.backbone import Backbone
from seppo.config import Config
from seppo.losses import LOSSES
from seppo.methods import METHODS
from seppo.sampler import generate


def batch_cond(backbone: Backbone, batch: dict, cfg: Config, keys: list[int], step: int) -> dict:
    """Conditioning for one micro-batch: cached text embeddings, prompt dropout, SDXL time ids."""
    device = backbone.device
    cond = {k: v.to(device, torch.float32) for k, v in batch["cond"].items()}
    if cfg.data.empty_prompt_prob > 0:
        drop = rng.per_sample_rand(seed=cfg.seed, stream="dropout", key=step, indices=keys) < cfg.data.empty_prompt_prob
        null = backbone.null_cond(len(keys))
        for k in cond:
            mask = drop.to(device).view(-1, *([1] * (cond[k].dim() - 1)))  # (B, 1, ...): broadcast over features
            cond[k] = torch.where(mask, null[k].to(device), cond[k])
    if backbone.is_sdxl:
        cond["time_ids"] = backbone.time_ids(batch["original_size"], batch["crop_top_left"], cfg.data.resolution).to(device)
    return cond


def reference_samples(backbone: Backbone, cfg: Config, batch: dict, cond: dict, keys: list[int], step: int) -> torch.Tensor:
    """x^ref: the drawn reference's samples for the batch's prompts, in model space, no gradient;
    looked up in `sampler.share_dir` first when it is set (seppo.shared_samples)."""
    shape = batch["winner"].shape[1:]

    def draw() -> torch.Tensor:
        with backbone.as_reference():
            return generate(backbone, cond, shape=shape, seed=cfg.seed, step=step, indices=keys,
                            steps=cfg.sampler.steps, guidance=cfg.sampler.guidance, eta=cfg.sampler.eta)

    if not cfg.sampler.share_dir:
        return draw()
    key = shared_samples.sample_key(cfg, backbone.reference_digest, cond, shape=shape, step=step, indices=keys,
                                    device=backbone.device)
    return shared_samples.load_or_draw(Path(cfg.sampler.share_dir), key, draw).to(backbone.device)


def losers(backbone: Backbone, cfg: Config, batch: dict, cond: dict, keys: list[int], step: int) -> torch.Tensor:
    """x^l: the data's losers, as cached."""
    return batch["loser"].to(backbone.device, torch.float32)


# Where the second half of the batch comes from, by `Method.second_half`.
SECOND_HALF = {"reference": reference_samples, "loser": losers}


def update_losses(backbone: Backbone, cfg: Config, batch: dict, keys: list[int], step: int, timings: dict):
    """Loss and metric tensors for one micro-batch. `keys` are the samples' global indices."""
    method = METHODS[cfg.method]
    x_w = batch["winner"].to(backbone.device, torch.float32)  # (B, ...)
    cond = batch_cond(backbone, batch, cfg, keys, step)

    # ─── sampling phase: the second half, x^ref from the drawn reference or x^l from the data ───
    t0 = time.perf_counter()
    x0 = x_w
    if method.second_half is not None:
        x_other = SECOND_HALF[method.second_half](backbone, cfg, batch, cond, keys, step)
        x0 = torch.cat([x_w, x_other])  # (2B, ...): winners, then reference samples or losers
    timings["generate"] += time.perf_counter() - t0

    # ─── training phase: one t and ε for a winner and its other half ───
    t1 = time.perf_counter()
    halves = x0.shape[0] // len(keys)
    t, eps = rng.timestep_and_noise(backbone.num_train_timesteps, x_w.shape[1:], seed=cfg.seed, key=step, indices=keys,
                                    device=backbone.device)
    t, eps = t.repeat(halves), eps.repeat(halves, *([1] * (eps.dim() - 1)))  # (halves·B,), (halves·B, ...)
    both = {k: v.repeat(halves, *([1] * (v.dim() - 1))) for k, v in cond.items()}  # (halves·B, ...)
    policy_err = backbone.denoising_error(x0, t, eps, both)  # (halves·B,)
    ref_err, gap = None, None
    if method.second_half is not None:
        with torch.no_grad(), backbone.as_reference():
            ref_err = backbone.denoising_error(x0, t, eps, both)  # (2B,)
        if cfg.flipper is not None and cfg.flipper_draws > 1:
            first = (ref_err - policy_err).detach().chunk(2)[0]  # (B,): this draw's gap on the winners
            gap = anchor_gap(backbone, x_w, cond, keys, step, cfg, first=first)
    loss, metrics = LOSSES[method.loss](policy_err, ref_err, beta=cfg.beta, flipper=cfg.flipper, anchor_gap=gap)
    timings["rest"] += time.perf_counter() - t1
    return loss, metrics


@torch.no_grad()
def anchor_gap(backbone: Backbone, x_w: torch.Tensor, cond: dict, keys: list[int], step: int, cfg: Config,
               first: torch.Tensor) -> torch.Tensor:
    """Mean of e_ref(x^w) − e_θ(x^w) over `cfg.flipper_draws` draws of (t, ε): the loss's own
    draw (`first`) plus draws d = 1.. from the flipper's streams, keyed by (update, d)."""
    gaps = [first]
    for d in range(1, cfg.flipper_draws):
        t, eps = rng.timestep_and_noise(backbone.num_train_timesteps, x_w.shape[1:], seed=cfg.seed, key=(step, d),
                                        indices=keys, device=x_w.device, streams=rng.FLIPPER)
        policy = backbone.denoising_error(x_w, t, eps, cond)
        with backbone.as_reference():
            reference = backbone.denoising_error(x_w, t, eps, cond)
        gaps.append(reference - policy)
    return torch.stack(gaps).mean(dim=0)  # (draws, B) → (B,)
