"""`benchmarks/bench_update.py`: time one SePPO update and its parts, our path against a plain one.

One process, one run (issue 6), in this order, each section written to the JSON as it ends:

    ceiling    a large matrix product (bf16 on a GPU, fp32 on the CPU): the rate to compare with
    plain      the update written the way the public Diffusion-DPO example works: text encoder and
               VAE encoder every step, reference samples from a `StableDiffusionPipeline` that
               decodes to pixels and is re-encoded, fp32 reference weights, nothing compiled
    optimized  our path: `Backbone` + `seppo.sampler.generate` + `seppo.train.update_losses`, on
               cached text embeddings and latents, with the levers (`Levers`) as flags
    levers     the optimized variant with one lever changed at a time (`--try key=value ...`)
    memory     peak memory for LoRA and full fine-tuning at a few per-device batches, with a pool
               of 7 snapshots of the trainable weights on the CPU

Every phase is timed by `timed` (median and spread over repeats, after warm-up calls) and its
floating-point operations are counted once, in eager mode, by `count_flops`. The update's speed-up
is the plain median time over the optimized median time for the same pairs.

Both variants split the update into micro-batches of `--micro-pairs` pairs with gradient
accumulation, as the training loop does; generation runs per micro-batch in both.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import resource
import subprocess
import tempfile
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from seppo.backbone import Backbone, per_sample_error
from seppo.config import Config, SamplerConfig
from seppo.losses import LOSSES
from seppo.sampler import generate
from seppo.train import update_losses

POOL_SIZE = 7  # the paper saved K = 7 checkpoints
# Prompts built from the embedded tokenizer's words, so both presets tokenize them.
PROMPT = "a handwritten digit {d} moving {way}"
WAYS = ("left", "right", "up", "down")
# Phases a lever can change; a lever trial times these (and the whole update).
LEVER_PHASES = {
    "bf16": ("generate", "policy_fwd_bwd", "reference_fwd", "optimizer"),
    "channels_last": ("generate", "policy_fwd_bwd", "reference_fwd"),
    "sdpa": ("generate", "policy_fwd_bwd", "reference_fwd"),
    "fused_adam": ("optimizer",),
    "mode": ("generate", "policy_fwd_bwd", "reference_fwd", "optimizer"),
    "compile": ("generate", "policy_fwd_bwd", "reference_fwd"),
    "compile_mode": ("generate", "policy_fwd_bwd", "reference_fwd"),
}


# --------------------------------------------------------------------------- settings


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


@dataclass
class Levers:
    """How the optimized variant does the update; each is measurable on and off."""

    bf16: bool = False  # bf16 autocast, and bf16 weights for the frozen reference
    channels_last: bool = False  # UNet weights in channels-last memory format
    sdpa: bool = True  # scaled-dot-product attention (diffusers' default); off: the classic processor
    fused_adam: bool = False  # torch.optim.AdamW(fused=True)
    mode: str = "full"  # "full" fine-tuning (frozen reference copy) or "lora" (adapter swap)
    compile: str = "none"  # torch.compile of the UNet: "none", "reference" (generation graph) or "all"
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" adds CUDA graphs
    pinned_pool: bool = True  # pool snapshots in pinned host memory (CUDA), so switching copies fast

    def changed(self, item: str) -> "Levers":
        """`bf16=off`, `mode=lora`, `compile=reference,channels_last=on` → a copy with those fields changed."""
        levers = self
        for change in item.split(","):
            key, _, value = change.partition("=")
            current = getattr(self, key)  # AttributeError names an unknown lever
            value = value.lower() in ("1", "on", "true", "yes") if isinstance(current, bool) else value
            levers = replace(levers, **{key: value})
        return levers


def lever_phases(item: str) -> tuple[str, ...]:
    """The phases that the levers changed in a trial item can affect."""
    keys = [change.partition("=")[0] for change in item.split(",")]
    return tuple(dict.fromkeys(p for k in keys for p in LEVER_PHASES[k]))


# --------------------------------------------------------------------------- the models


@dataclass
class Parts:
    """Random-weight components of one preset, shared by both variants."""

    unet_config: dict
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object  # DDPM-style training scheduler
    vae: torch.nn.Module  # used by the plain variant only; ours stays in model space
    sample_shape: tuple  # one model-space sample (C, h, w)
    pixel_shape: tuple  # one image (C, H, W)
    device: torch.device

    def make_unet(self, seed: int = 0):
        """A fresh UNet with seeded random weights, initialised on the device."""
        from diffusers import UNet2DConditionModel

        with torch.random.fork_rng(devices=[]), self.device:
            torch.manual_seed(seed)
            return UNet2DConditionModel.from_config(self.unet_config)


def tiny_parts(device: torch.device, work: Path) -> Parts:
    """The embedded model's geometry (16×16×1 pixels) and text encoder; a 1-channel VAE that
    does not downsample, so the plain variant's pixel round trip keeps the same model space."""
    from diffusers import AutoencoderKL

    from seppo.config import PretrainConfig
    from seppo.pretrain import build_tiny_model

    cfg = PretrainConfig()
    unet, text_encoder, tokenizer, scheduler = build_tiny_model(cfg, work / "tiny")
    side, channels = cfg.unet.sample_size, cfg.unet.channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        vae = AutoencoderKL(in_channels=channels, out_channels=channels, latent_channels=channels,
                            down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                            block_out_channels=(16,), layers_per_block=1, norm_num_groups=8, sample_size=side,
                            scaling_factor=1.0)
    return Parts(unet_config=dict(unet.config), text_encoder=text_encoder.to(device).requires_grad_(False).eval(),
                 tokenizer=tokenizer,
                 scheduler=scheduler, vae=vae.to(device).requires_grad_(False).eval(),
                 sample_shape=(channels, side, side), pixel_shape=(channels, side, side), device=device)


def sd15_parts(device: torch.device, work: Path, *, block_out=(320, 640, 1280, 1280), latent: int = 64) -> Parts:
    """Stable Diffusion 1.5's architecture with random weights: its UNet (UNet2DConditionModel's
    defaults), its VAE, and a text encoder of CLIP ViT-L/14's size over the embedded vocabulary.
    `block_out` and `latent` shrink it for `sd15-mini`, which checks this code path on a CPU."""
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from seppo.embedded.tokenizer import write_tokenizer

    unet_config = dict(sample_size=latent, in_channels=4, out_channels=4, block_out_channels=tuple(block_out),
                       cross_attention_dim=768, attention_head_dim=8, layers_per_block=2)
    write_tokenizer(work / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(work / "tokenizer", model_max_length=77)
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                 num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                 hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]), device:
        torch.manual_seed(1)
        text_encoder = CLIPTextModel(text_config)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                            layers_per_block=2, sample_size=8 * latent, scaling_factor=0.18215)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              prediction_type="epsilon", clip_sample=False, steps_offset=1)
    return Parts(unet_config=unet_config, text_encoder=text_encoder.requires_grad_(False).eval(), tokenizer=tokenizer,
                 scheduler=scheduler, vae=vae.requires_grad_(False).eval(), sample_shape=(4, latent, latent),
                 pixel_shape=(3, 8 * latent, 8 * latent), device=device)


PRESETS = {"tiny": tiny_parts, "sd15": sd15_parts,
           "sd15-mini": functools.partial(sd15_parts, block_out=(32, 64, 128, 128), latent=8)}


def prompts(n: int) -> list[str]:
    return [PROMPT.format(d=i % 10, way=WAYS[i // 10 % 4]) for i in range(n)]


def seeded_randn(shape, seed: int, device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)).to(device)


def micro_slices(s: Settings) -> list[slice]:
    return [slice(i, min(i + s.micro, s.pairs)) for i in range(0, s.pairs, s.micro)]


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# --------------------------------------------------------------------------- measuring


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
    from torch.utils.flop_counter import FlopCounterMode

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


# --------------------------------------------------------------------------- variants


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


def bench_config(s: Settings) -> Config:
    """The training config `update_losses` reads: SePPO with the sign flipper, β = 5000."""
    return Config(method="seppo", flipper="sign", sampler=SamplerConfig(steps=s.steps, guidance=s.guidance, eta=0.0))


@dataclass
class Optimized:
    """Our backbone, set up for training with the levers, and its optimizer."""

    backbone: Backbone
    optimizer: torch.optim.Optimizer
    levers: Levers


def build_optimized(parts: Parts, levers: Levers) -> Optimized:
    unet = parts.make_unet()
    if not levers.sdpa:
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    backbone = Backbone(unet=unet, text_encoders=[parts.text_encoder], tokenizers=[parts.tokenizer],
                        scheduler=parts.scheduler, vae=None, source="bench")
    backbone.setup_training(levers.mode)
    unets = [m for m in (backbone.unet, backbone.reference_unet) if m is not None]
    if levers.bf16 and backbone.reference_unet is not None:
        backbone.reference_unet.to(torch.bfloat16)  # it never trains
    if levers.channels_last:
        for m in unets:
            m.to(memory_format=torch.channels_last)
    backbone.unet.train()
    params = [p for _, p in backbone.trainable_named_parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=levers.fused_adam)
    return Optimized(backbone, optimizer, levers)


def apply_compile(model: Optimized) -> None:
    model.backbone.compile(model.levers.compile, mode=model.levers.compile_mode)


def optimized_variant(model: Optimized, s: Settings, parts: Parts, name: str = "optimized") -> Variant:
    """The real update (`update_losses` per micro-batch, accumulated, one optimizer step) and its
    parts on cached text embeddings and cached winner latents."""
    backbone, optimizer, device = model.backbone, model.optimizer, parts.device
    cfg = bench_config(s)
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

    # The training phases on fixed noisy pairs x_t = (winners, reference samples) at shared t, ε.
    noised = []
    for sl in slices:
        m = sl.stop - sl.start
        x0 = torch.cat([winners[sl], seeded_randn(winners[sl].shape, 1, device)])  # (2m, C, h, w)
        eps = seeded_randn(winners[sl].shape, 2, device).repeat(2, 1, 1, 1)  # (2m, C, h, w)
        t = torch.randint(backbone.num_train_timesteps, (m,), generator=torch.Generator().manual_seed(3)).to(device).repeat(2)
        cond2 = {k: v[sl].repeat(2, *([1] * (v.dim() - 1))) for k, v in cond.items()}  # (2m, ...)
        noised.append((backbone.add_noise(x0, eps, t), t, cond2, backbone.target(x0, eps, t)))

    def policy_fwd_bwd():
        for x_t, t, c, target in noised:
            (per_sample_error(backbone.predict(x_t, t, c), target).mean() / len(noised)).backward()

    @torch.no_grad()
    def reference_fwd():
        with backbone.as_reference():
            for x_t, t, c, target in noised:
                per_sample_error(backbone.predict(x_t, t, c), target)

    phases = {"update": update, "generate": reference_samples, "policy_fwd_bwd": policy_fwd_bwd,
              "reference_fwd": reference_fwd, "optimizer": optimizer_phase(optimizer)}
    return Variant(name, s.pairs, phases, context=lambda: autocast(device, model.levers.bf16),
                   info={"levers": dataclasses.asdict(model.levers), "trainable_parameters":
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
    from diffusers import DDIMScheduler, StableDiffusionPipeline

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
    cfg = bench_config(s)

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
        (p_w, p_r), (r_w, r_r) = model_err.chunk(2), ref_err.chunk(2)  # (m,) each
        return LOSSES["seppo"](p_w, p_r, r_w, r_r, cfg.beta, flipper=cfg.flipper)[0]

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


# --------------------------------------------------------------------------- measuring a variant


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


def memory_probe(parts: Parts, levers: Levers, batches: list[int], s: Settings) -> dict:
    """Peak memory of one update at each per-device batch, with a pool of 7 snapshots of the
    trainable weights on the CPU, and the time to switch the reference to one of them."""
    device = parts.device
    model = build_optimized(parts, replace(levers, compile="none"))
    backbone = model.backbone
    pool = [backbone.trainable_state() for _ in range(POOL_SIZE)]
    if levers.pinned_pool and device.type == "cuda":
        pool = [{k: v.pin_memory() for k, v in snap.items()} for snap in pool]
    switch = timed(lambda: backbone.load_reference_state(pool[POOL_SIZE // 2]), repeats=max(1, s.repeats), warmup=1,
                   device=device)
    out = {"mode": levers.mode, "pool_snapshots": POOL_SIZE, "pool_bytes": sum(
        v.numel() * v.element_size() for snap in pool for v in snap.values()),
        "pool_pinned": levers.pinned_pool and device.type == "cuda", "reference_switch_s": switch["median_s"],
        "host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "batches": {}}
    for b in batches:
        variant = optimized_variant(model, replace(s, pairs=b, micro_pairs=b), parts, name=f"memory-{levers.mode}-{b}")
        reset_peak_memory(device)
        seconds = clock(variant.call("update"), device)
        out["batches"][str(b)] = {"update_s": seconds, **peak_memory(device)}
    del model, backbone, pool
    free(device)
    return out


def fit_micro_pairs(parts: Parts, levers: Levers, s: Settings, *, share: float = 0.8) -> int:
    """The largest micro-batch (all pairs, then halving) whose policy forward+backward plus the
    optimizer's state fits in `share` of the GPU's memory; all pairs on the CPU."""
    device = parts.device
    if device.type != "cuda":
        return s.pairs
    model = build_optimized(parts, replace(levers, compile="none"))
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


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
    import diffusers
    import transformers

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
    levers = Levers(bf16=device.type == "cuda" if args.bf16 is None else args.bf16, channels_last=args.channels_last,
                    sdpa=args.sdpa, fused_adam=args.fused_adam, mode=args.mode, compile=args.compile,
                    compile_mode=args.compile_mode)
    report = Report(Path(args.out) / "bench.json", {"meta": meta(args, device), "preset": args.preset,
                    "settings": dataclasses.asdict(s), "levers": dataclasses.asdict(levers), "skipped": [], "errors": {},
                    "section_seconds": {}, "levers_tried": {}, "memory": {}}, time.monotonic() + args.budget_s)
    data = report.data
    parts = PRESETS[args.preset](device, Path(tempfile.mkdtemp(prefix="seppo-bench-")))
    data["ceiling"] = report.section("ceiling", lambda: matmul_ceiling(device)) or {"tflops": 0.0}
    if args.micro_pairs == "auto":
        s.micro_pairs = report.section("fit micro-batch", lambda: fit_micro_pairs(parts, levers, s)) or 1
        data["settings"] = dataclasses.asdict(s)
    optimized = OptimizedRuns(parts, s, data["ceiling"]["tflops"])

    # ─── the gate: plain and optimized, same process, same settings ───
    if args.plain:
        data["plain"] = report.section("plain", lambda: run_plain(parts, s, levers.bf16, data["ceiling"]["tflops"]))
        free(device)
    data["optimized"] = report.section("optimized", lambda: optimized.run(levers, "optimized"))
    set_ratio(data, "optimized")
    update_s = ((data["optimized"] or {}).get("phases") or {}).get("update", {}).get("median_s", 1.0)

    # ─── memory: LoRA and full at a few per-device batches, pool of 7 on the CPU ───
    for mode in args.memory_modes:
        estimate = 3 * update_s * sum(args.memory_batches) / s.pairs + (30 if device.type == "cuda" else 1)
        data["memory"][mode] = report.section(f"memory {mode}", lambda: memory_probe(
            parts, replace(levers, mode=mode), args.memory_batches, s), estimate_s=estimate)

    # ─── levers: one trial per item, each changing the optimized variant's levers ───
    for item in args.try_levers:
        trial = levers.changed(item)
        compile_s = {"none": 0, "reference": args.compile_estimate_s[0], "all": sum(args.compile_estimate_s)}[trial.compile]
        estimate = 2.5 * (s.warmup + s.repeats) * update_s + compile_s
        data["levers_tried"][item] = report.section(f"lever {item}", lambda: optimized.run(trial, item, lever_phases(item)),
                                                    estimate_s=estimate)
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
    (mode, attention), in eager mode before any compile, since the other levers leave them unchanged."""

    def __init__(self, parts: Parts, s: Settings, ceiling_tflops: float):
        self.parts, self.s, self.ceiling_tflops, self.flops = parts, s, ceiling_tflops, {}

    def run(self, levers: Levers, name: str, phases: tuple[str, ...] | None = None) -> dict:
        device = self.parts.device
        model = build_optimized(self.parts, levers)
        variant = optimized_variant(model, self.s, self.parts, name)
        key = (levers.mode, levers.sdpa)
        if key not in self.flops:
            self.flops[key] = variant_flops(lambda settings: optimized_variant(model, settings, self.parts), self.s, device)
        apply_compile(model)
        try:
            return measure(variant, self.s, device, ceiling_tflops=self.ceiling_tflops, phases=phases,
                           flops=self.flops[key])
        finally:
            del model, variant
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
    p.add_argument("--bf16", action=on_off, default=None, help="bf16 autocast + bf16 reference (default: on with CUDA)")
    p.add_argument("--channels-last", action=on_off, default=False)
    p.add_argument("--sdpa", action=on_off, default=True)
    p.add_argument("--fused-adam", action=on_off, default=True)
    p.add_argument("--mode", choices=("full", "lora"), default="full")
    p.add_argument("--compile", choices=("none", "reference", "all"), default="none")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--compile-estimate-s", type=float, nargs=2, default=(90.0, 200.0), metavar=("GEN", "TRAIN"),
                   help="budgeted compile seconds of the generation and the training graphs")
    p.add_argument("--plain", action=on_off, default=True, help="also run the plain variant")
    p.add_argument("--try", dest="try_levers", nargs="*", default=[], metavar="LEVER=VALUE",
                   help="one trial per item with that lever changed, e.g. bf16=off mode=lora compile=reference")
    p.add_argument("--memory-modes", nargs="*", default=[], choices=("full", "lora"))
    p.add_argument("--memory-batches", type=int, nargs="*", default=[1, 4])
    p.add_argument("--budget-s", type=float, default=3600.0, help="skip sections that would end past this")
    p.add_argument("--commit", default="", help="the commit measured, where the tree has no .git")
    p.add_argument("--out", default="/tmp/seppo-bench", help="folder for bench.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = os.environ.get("SEPPO_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    data = run(args)
    print(data["summary_markdown"], flush=True)
    return 0
