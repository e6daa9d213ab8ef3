"""The two variants `bench_update.py` measures, over the same models and settings.

| variant   | what it does |
|-----------|--------------|
| plain     | the update as the public Diffusion-DPO example writes it, with SePPO's loss: prompts through the text encoder and winners through the VAE encoder every step; reference samples from a diffusers pipeline (decoded to pixels, re-encoded); an fp32 reference copy; plain AdamW |
| optimized | training's own code: the policy set up by `seppo.policy.setup_policy` from a training config (`train.mode`, `train.mixed_precision`, `train.compile`: the levers), `seppo.update.update_losses` per micro-batch, on cached text embeddings and latents |
"""

from __future__ import annotations

import copy
import json
import resource
from dataclasses import dataclass, replace

import torch
from bench_measure import (
    Settings,
    Variant,
    autocast,
    clock,
    free,
    micro_slices,
    optimizer_phase,
    peak_memory,
    reset_peak_memory,
    timed,
)
from bench_models import Parts, prompts, seeded_randn
from diffusers import DDIMScheduler, StableDiffusionPipeline

from seppo import rng
from seppo.backbone import Backbone, per_sample_error
from seppo.config import Config, load_config
from seppo.losses import LOSSES
from seppo.policy import FROZEN_DTYPES, setup_policy
from seppo.sampler import generate
from seppo.update import update_losses

POOL_SIZE = 7  # the paper saved K = 7 checkpoints
# The training config fields the benchmark varies, and the phases each can change.
LEVERS = {"mixed_precision": ("generate", "policy_fwd_bwd", "reference_fwd", "optimizer"),
          "mode": ("generate", "policy_fwd_bwd", "reference_fwd", "optimizer"),
          "compile": ("generate", "policy_fwd_bwd", "reference_fwd")}


def training_config(s: Settings, levers: dict[str, str] | None = None) -> Config:
    """The training config the optimized update runs: SePPO with the sign flipper, β = 5000, the
    settings' reference sampler, and the levers as `train.*` fields (validated like any config)."""
    overrides = [f"sampler.steps={s.steps}", f"sampler.guidance={s.guidance}", "beta=5000",
                 *(f"train.{k}={json.dumps(v)}" for k, v in (levers or {}).items())]  # quoted: YAML reads no as false
    return load_config(None, overrides)


@dataclass
class Optimized:
    """Our backbone, set up for training from the config, and its optimizer."""

    backbone: Backbone
    optimizer: torch.optim.Optimizer
    cfg: Config

    @property
    def levers(self) -> dict:
        return {k: getattr(self.cfg.train, k) for k in LEVERS}


def build_optimized(parts: Parts, cfg: Config) -> Optimized:
    backbone = Backbone(unet=parts.make_unet(), text_encoders=[parts.text_encoder], tokenizers=[parts.tokenizer],
                        scheduler=parts.scheduler, vae=None, source="bench")
    _, optimizer = setup_policy(backbone, cfg.train, frozen_dtype=FROZEN_DTYPES[cfg.train.mixed_precision])
    backbone.unet.train()
    return Optimized(backbone, optimizer, cfg)


def apply_compile(model: Optimized) -> None:
    model.backbone.compile(model.cfg.train.compile)


def optimized_variant(model: Optimized, s: Settings, parts: Parts, name: str = "optimized") -> Variant:
    """The real update (`update_losses` per micro-batch, accumulated, one optimizer step) and its
    parts on cached text embeddings and cached winner latents."""
    backbone, optimizer, device = model.backbone, model.optimizer, parts.device
    cfg = replace(model.cfg, sampler=replace(model.cfg.sampler, steps=s.steps))
    cond = backbone.encode_prompts(prompts(s.pairs))  # cached text embeddings: {"hidden": (P, L, D)}
    winners = seeded_randn((s.pairs, *parts.sample_shape), 0, device)  # cached latents (P, C, h, w)
    slices = micro_slices(s)

    def micro_batch(sl: slice) -> dict:
        return {"winner": winners[sl], "cond": {k: v[sl] for k, v in cond.items()}}

    def update():
        timings = {"generate": 0.0, "rest": 0.0}
        for sl in slices:
            keys = list(range(sl.start, sl.stop))
            loss, _ = update_losses(backbone, cfg, micro_batch(sl), keys, 0, timings)
            (loss / len(slices)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def reference_samples():
        with backbone.as_reference():
            for sl in slices:
                generate(backbone, {k: v[sl] for k, v in cond.items()}, shape=parts.sample_shape, seed=0, step=0,
                         indices=list(range(sl.start, sl.stop)), steps=s.steps, guidance=s.guidance)

    # The training phases on fixed pairs (winners, stand-ins for reference samples) at a shared t, ε.
    pairs = []
    for sl in slices:
        x0 = torch.cat([winners[sl], seeded_randn(winners[sl].shape, 1, device)])  # (2m, C, h, w)
        t, eps = rng.timestep_and_noise(backbone.num_train_timesteps, parts.sample_shape, seed=0, key=0,
                                        indices=range(sl.start, sl.stop), device=device)  # (m,), (m, C, h, w)
        cond2 = {k: v[sl].repeat(2, *([1] * (v.dim() - 1))) for k, v in cond.items()}  # (2m, ...)
        pairs.append((x0, t.repeat(2), eps.repeat(2, 1, 1, 1), cond2))  # t (2m,), ε (2m, C, h, w)

    def policy_fwd_bwd():
        for x0, t, eps, c in pairs:
            (backbone.denoising_error(x0, t, eps, c).mean() / len(pairs)).backward()

    @torch.no_grad()
    def reference_fwd():
        with backbone.as_reference():
            for x0, t, eps, c in pairs:
                backbone.denoising_error(x0, t, eps, c)

    phases = {"update": update, "generate": reference_samples, "policy_fwd_bwd": policy_fwd_bwd,
              "reference_fwd": reference_fwd, "optimizer": optimizer_phase(optimizer)}
    return Variant(name, s.pairs, phases, context=lambda: autocast(device, cfg.train.mixed_precision == "bf16"),
                   info={"levers": model.levers, "trainable_parameters":
                         sum(p.numel() for _, p in backbone.trainable_named_parameters())})


@dataclass
class Plain:
    """The plain variant's models: the policy, an fp32 reference copy, the pipeline, AdamW."""

    unet: torch.nn.Module
    ref_unet: torch.nn.Module
    pipe: object
    optimizer: torch.optim.Optimizer
    bf16: bool


def build_plain(parts: Parts, bf16: bool) -> Plain:
    unet = parts.make_unet().train()
    ref_unet = copy.deepcopy(unet).requires_grad_(False).eval()
    pipe = StableDiffusionPipeline(vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                                   unet=ref_unet, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                   scheduler=DDIMScheduler.from_config(parts.scheduler.config, timestep_spacing="trailing"))
    pipe.set_progress_bar_config(disable=True)
    return Plain(unet, ref_unet, pipe, torch.optim.AdamW(unet.parameters(), lr=1e-6), bf16)


def plain_variant(model: Plain, s: Settings, parts: Parts) -> Variant:
    """The update as the public Diffusion-DPO example writes it, with SePPO's loss: prompts through
    the text encoder and winners through the VAE encoder every step; reference samples from a
    diffusers pipeline (decoded to pixels, then re-encoded); an fp32 reference copy; plain AdamW."""
    device, tokenizer, text_encoder, vae = parts.device, parts.tokenizer, parts.text_encoder, parts.vae
    unet, ref_unet, pipe, optimizer, noise_scheduler = model.unet, model.ref_unet, model.pipe, model.optimizer, parts.scheduler
    texts = prompts(s.pairs)
    pixels = seeded_randn((s.pairs, *parts.pixel_shape), 0, device).clamp(-1, 1)  # winners as images in [−1, 1]
    slices = micro_slices(s)
    cfg = training_config(s)

    @torch.no_grad()
    def encode_text(batch: list[str]) -> torch.Tensor:
        ids = tokenizer(batch, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        return text_encoder(ids)[0]

    @torch.no_grad()
    def encode_images(images: torch.Tensor) -> torch.Tensor:
        return vae.encode(images).latent_dist.sample() * vae.config.scaling_factor

    @torch.no_grad()
    def reference_samples(batch: list[str]) -> torch.Tensor:
        images = pipe(batch, num_inference_steps=s.steps, guidance_scale=s.guidance, output_type="pt").images  # [0, 1]
        return encode_images(images * 2 - 1)

    def noised(x_w: torch.Tensor, x_ref: torch.Tensor, hidden: torch.Tensor):
        noise = torch.randn_like(x_w).repeat(2, 1, 1, 1)  # (2m, C, h, w): shared by a pair
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x_w),), device=device).repeat(2)
        x_t = noise_scheduler.add_noise(torch.cat([x_w, x_ref]), noise, t)  # (2m, C, h, w)
        return x_t, t, hidden.repeat(2, 1, 1), noise

    def loss_of(x_t, t, hidden, noise) -> torch.Tensor:
        model_err = per_sample_error(unet(x_t, t, encoder_hidden_states=hidden).sample, noise)  # (2m,)
        with torch.no_grad():
            ref_err = per_sample_error(ref_unet(x_t, t, encoder_hidden_states=hidden).sample, noise)  # (2m,)
        return LOSSES["seppo"](model_err, ref_err, beta=cfg.beta, flipper=cfg.flipper)[0]

    def update():
        for sl in slices:
            hidden = encode_text(texts[sl])
            loss = loss_of(*noised(encode_images(pixels[sl]), reference_samples(texts[sl]), hidden))
            (loss / len(slices)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    fixed = [noised(encode_images(pixels[sl]), encode_images(pixels[sl]), encode_text(texts[sl])) for sl in slices]

    def policy_fwd_bwd():
        for x_t, t, hidden, noise in fixed:
            (per_sample_error(unet(x_t, t, encoder_hidden_states=hidden).sample, noise).mean() / len(fixed)).backward()

    @torch.no_grad()
    def reference_fwd():
        for x_t, t, hidden, noise in fixed:
            per_sample_error(ref_unet(x_t, t, encoder_hidden_states=hidden).sample, noise)

    phases = {"update": update, "text_encode": lambda: [encode_text(texts[sl]) for sl in slices],
              "vae_encode": lambda: [encode_images(pixels[sl]) for sl in slices],
              "generate": lambda: [reference_samples(texts[sl]) for sl in slices],
              "policy_fwd_bwd": policy_fwd_bwd, "reference_fwd": reference_fwd, "optimizer": optimizer_phase(optimizer)}
    return Variant("plain", s.pairs, phases, context=lambda: autocast(device, model.bf16),
                   info={"bf16_autocast": model.bf16, "reference_weights": "fp32", "trainable_parameters":
                         sum(p.numel() for p in unet.parameters())})


def _eager(cfg: Config) -> Config:
    return replace(cfg, train=replace(cfg.train, compile="none"))


def memory_probe(parts: Parts, cfg: Config, batches: list[int], s: Settings) -> dict:
    """Peak memory of one update at each per-device batch, with a pool of 7 snapshots of the
    trainable weights on the CPU (as training keeps them), and the time to switch the
    reference to one of them."""
    device = parts.device
    model = build_optimized(parts, _eager(cfg))
    backbone = model.backbone
    pool = [backbone.trainable_state() for _ in range(POOL_SIZE)]
    switch = timed(lambda: backbone.load_reference_state(pool[POOL_SIZE // 2]), repeats=max(1, s.repeats), warmup=1,
                   device=device)
    mode = cfg.train.mode
    out = {"mode": mode, "pool_snapshots": POOL_SIZE, "pool_bytes": sum(
        v.numel() * v.element_size() for snap in pool for v in snap.values()), "reference_switch_s": switch["median_s"],
        "host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "batches": {}}
    for b in batches:
        variant = optimized_variant(model, replace(s, pairs=b, micro_pairs=b), parts, name=f"memory-{mode}-{b}")
        reset_peak_memory(device)
        seconds = clock(variant.call("update"), device)
        out["batches"][str(b)] = {"update_s": seconds, **peak_memory(device)}
    model = backbone = pool = None  # drop the references before freeing (closures hold them too)
    free(device)
    return out


def fit_micro_pairs(parts: Parts, cfg: Config, s: Settings, *, share: float = 0.8) -> int:
    """The largest micro-batch (all pairs, then halving) whose policy forward+backward plus the
    optimizer's state fits in `share` of the GPU's memory; all pairs on the CPU."""
    device = parts.device
    if device.type != "cuda":
        return s.pairs
    model = build_optimized(parts, _eager(cfg))
    adam_bytes = 2 * sum(p.numel() * p.element_size() for p in model.optimizer.param_groups[0]["params"])
    budget = share * torch.cuda.get_device_properties(device).total_memory
    m = s.pairs
    while m > 1:
        variant = optimized_variant(model, replace(s, pairs=m, micro_pairs=m), parts, name="fit")
        reset_peak_memory(device)
        try:
            variant.call("policy_fwd_bwd")()
            fits = torch.cuda.max_memory_allocated(device) + adam_bytes < budget
        except torch.OutOfMemoryError:
            fits = False
        model.optimizer.zero_grad(set_to_none=True)
        del variant
        free(device)
        if fits:
            break
        m //= 2
    del model
    free(device)
    return m
