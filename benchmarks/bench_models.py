"""The models `bench_update.py` measures: random-weight components of one preset, shared by both variants.

| preset      | UNet                                    | samples                        |
|-------------|-----------------------------------------|--------------------------------|
| `tiny`      | the embedded model (16×16×1 pixels)      | pixels; the plain variant's VAE is 1-channel and does not downsample |
| `sd15`      | SD-1.5's UNet, VAE, a CLIP-ViT-L-sized text encoder | 64×64×4 latents, 512² pixels |
| `sd15-mini` | the SD-1.5 layout at 1/10 width          | 8×8×4 latents: the SD-1.5 code path on a CPU in minutes |
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from seppo.config import PretrainConfig
from seppo.embedded.pretrain import build_tiny_model
from seppo.embedded.tokenizer import write_tokenizer

# Prompts built from the embedded tokenizer's words, so both presets tokenize them.
PROMPT = "a handwritten digit {d} moving {way}"
WAYS = ("left", "right", "up", "down")


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
        with torch.random.fork_rng(devices=[]), self.device:
            torch.manual_seed(seed)
            return UNet2DConditionModel.from_config(self.unet_config)


def tiny_parts(device: torch.device, work: Path) -> Parts:
    """The embedded model's geometry (16×16×1 pixels) and text encoder; a 1-channel VAE that
    does not downsample, so the plain variant's pixel round trip keeps the same model space."""
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
