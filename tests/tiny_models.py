"""Tiny SD-1.5- and SDXL-architecture diffusers folders for tests (each built in well under 2 s).

The models have the real architectures (same classes, same config fields, same layout on
disk) at toy sizes: 16×16 RGB images ↔ 4×8×8 VAE latents, a 16-token CLIP tokenizer with a
few dozen words, 32-wide text encoders. All weights are seeded, so two builds are equal.

Import from tests as `from tiny_models import make_tiny_sd15, make_tiny_sdxl, ...`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from seppo.embedded.tokenizer import bpe_vocab, write_tokenizer

MAX_LENGTH = 16  # tokenizer model_max_length == text encoder max_position_embeddings
TEXT_DIM = 32  # hidden size of every tiny text encoder
IMAGE_SIZE = 16  # pixels; the VAE halves once → 8×8 latents
LATENT_SIZE = 8
# Longest first, so a word's merge chain ranks before any shorter word's merges.
WORDS = ("photo", "blue", "cat", "dog", "red", "car", "of", "a")
_CHARS = "abcdefghijklmnopqrstuvwxyz"
SEED = 0


def tiny_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    return bpe_vocab(WORDS, _CHARS)


def write_tiny_clip_tokenizer(folder) -> CLIPTokenizer:
    """Write a tiny CLIP BPE tokenizer to `folder` and load it back with `from_pretrained`.

    (`CLIPTokenizer(vocab_file=..., merges_file=...)` in transformers 5 ignores the files and
    builds a two-token tokenizer, so only `from_pretrained` is used.)
    """
    write_tokenizer(folder, words=WORDS, chars=_CHARS, max_length=MAX_LENGTH)
    return CLIPTokenizer.from_pretrained(folder)


def _text_config(tokenizer: CLIPTokenizer, **extra) -> CLIPTextConfig:
    # bos/eos/pad must be the tiny vocab's ids: CLIPTextConfig defaults them to 49406/49407,
    # and the pooled output is read at the first eos_token_id position.
    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=MAX_LENGTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **extra,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(16, 32), layers_per_block=1,
        latent_channels=4, norm_num_groups=8, sample_size=IMAGE_SIZE,
    )


def _scheduler_kwargs(prediction_type: str) -> dict:
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type=prediction_type)


def make_tiny_sd15(folder, *, prediction_type: str = "epsilon") -> Path:
    """A tiny SD-1.5-architecture diffusers folder (unet, vae, text_encoder, tokenizer, scheduler)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    folder = Path(folder)
    tokenizer = write_tiny_clip_tokenizer(folder / "tokenizer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(
            sample_size=LATENT_SIZE, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_DIM, attention_head_dim=8, norm_num_groups=8,
        )
        vae = _vae()
        text_encoder = CLIPTextModel(_text_config(tokenizer))
    scheduler = DDIMScheduler(**_scheduler_kwargs(prediction_type), clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def make_tiny_sdxl(folder) -> Path:
    """A tiny SDXL-architecture diffusers folder: two text encoders (the second with a
    projection giving the pooled embedding), a text_time UNet, VAE and scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    folder = Path(folder)
    tokenizer = write_tiny_clip_tokenizer(folder / "tokenizer")
    tokenizer_2 = write_tiny_clip_tokenizer(folder / "tokenizer_2")
    time_dim = 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(
            sample_size=LATENT_SIZE, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 1),
            projection_class_embeddings_input_dim=6 * time_dim + TEXT_DIM,  # 6 time ids + pooled text
            cross_attention_dim=2 * TEXT_DIM,  # both encoders' hidden states concatenated
            norm_num_groups=8,
        )
        vae = _vae()
        text_encoder = CLIPTextModel(_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer_2, projection_dim=TEXT_DIM))
    scheduler = EulerDiscreteScheduler(**_scheduler_kwargs("epsilon"), timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder)
    return folder


_RESNET_TO_LDM = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                  ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def unet_state_dict_to_ldm(unet) -> dict[str, torch.Tensor]:
    """A diffusers `UNet2DConditionModel` state dict in the original LDM (CompVis / A1111
    single-file) key layout, `model.diffusion_model.input_blocks.1.0.in_layers.0.weight` etc.

    The inverse of diffusers' `convert_ldm_unet_checkpoint` for SD-1.x-style UNets (any
    block count and `layers_per_block`), after the diffusers script
    `convert_diffusers_to_original_stable_diffusion.py`. Transformer internals keep their names.
    """
    cfg = unet.config
    per = cfg.layers_per_block
    n = len(cfg.block_out_channels)
    prefixes = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
                "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
                "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
                "mid_block.resnets.1.": "middle_block.2."}
    for i in range(n):
        for j in range(per):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{(per + 1) * i + j + 1}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{(per + 1) * i + j + 1}.1."
        if i < n - 1:
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(per + 1) * (i + 1)}.0.op."
        has_attention = "CrossAttn" in cfg.up_block_types[i]
        for j in range(per + 1):
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{(per + 1) * i + j}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{(per + 1) * i + j}.1."
        if i < n - 1:
            prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(per + 1) * i + per}.{2 if has_attention else 1}."
    out = {}
    for key, value in unet.state_dict().items():
        hf_prefix = next(p for p in sorted(prefixes, key=len, reverse=True) if key.startswith(p))
        rest = key[len(hf_prefix):]
        if ".resnets." in hf_prefix:
            for hf, ldm in _RESNET_TO_LDM:
                if rest.startswith(hf + "."):
                    rest = ldm + rest[len(hf):]
                    break
        out["model.diffusion_model." + prefixes[hf_prefix] + rest] = value.detach().clone().contiguous()
    return out
