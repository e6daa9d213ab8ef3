"""A thin adapter over diffusers components: the one place that knows model layouts.

It exposes what the loop needs and writes none of diffusers again:
- `encode_prompts(prompts)` → conditioning dict {"hidden": (B, L, D)[, "pooled": (B, P)]}
- `encode_images(pixels)` → model-space samples (VAE latents, or the pixels themselves)
- `predict(x_t, t, cond)` → the UNet's output (ε or v), as the policy or, inside
  `as_reference()`, as the reference model
- `denoising_error(x0, t, eps, cond)` → e_m(x0) of DESIGN.md §1, (B,), for the active model,
  from `add_noise`, `target` and `per_sample_error`; the (t, ε) draw is seppo.rng's.

Layouts handled (all loaded from local folders with `from_pretrained`, nothing fetched):
- the embedded tiny model and Stable Diffusion 1.x/2.x: `unet/`, `text_encoder/`,
  `tokenizer/`, `scheduler/`, and `vae/` for a latent model (none: a pixel-space model);
- SDXL: additionally `text_encoder_2/`, `tokenizer_2/`; conditioning gets "pooled" and
  the UNet gets `add_time_ids` = (orig_h, orig_w, crop_top, crop_left, target_h, target_w);
- AnimateDiff: an image model plus a `MotionAdapter` folder → `UNetMotionModel`.

The reference model: in `full` mode a frozen copy of the UNet whose weights are replaced by
the drawn snapshot; in `lora` mode a second peft adapter named "reference" on the same UNet.
`as_reference()` switches to it and always switches back (try/finally).
"""

from __future__ import annotations

import copy
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from peft import LoraConfig
from safetensors import SafetensorError
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from seppo.errors import ModelError
from seppo.sharding import shard_like, whole

POLICY_ADAPTER = "default"
REFERENCE_ADAPTER = "reference"


def _require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ModelError(f"{what} not found: {path}")


def _load(cls, folder: Path, what: str, **kwargs):
    _require_folder(folder, what)
    try:
        return cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, json.JSONDecodeError, SafetensorError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{folder}: not a loadable {what} ({first})") from None


class Backbone:
    """Diffusers components plus the policy/reference switch. Build with `load_backbone`."""

    def __init__(self, *, unet, text_encoders, tokenizers, scheduler, vae=None, prediction_type: str = "auto",
                 source: str = "", is_video: bool = False, num_frames: int = 0):
        self.unet = unet
        self.text_encoders = list(text_encoders)
        self.tokenizers = list(tokenizers)
        self.scheduler = scheduler  # the training (noise) scheduler, DDPM-style config
        self.vae = vae
        self.source = source
        self.is_video = is_video
        self.num_frames = num_frames
        pt = scheduler.config.get("prediction_type", "epsilon") if prediction_type == "auto" else prediction_type
        if pt not in ("epsilon", "v_prediction"):
            raise ModelError(f"{source}: prediction_type {pt!r} is not supported (epsilon or v_prediction)")
        self.prediction_type = pt
        if scheduler.config.get("prediction_type") != pt:  # an override: the sampler's DDIM is built from this config
            self.scheduler = scheduler = type(scheduler).from_config(scheduler.config, prediction_type=pt)
        self.is_sdxl = len(self.text_encoders) == 2
        self.mode = "full"
        self.reference_unet = None  # full mode: frozen copy holding the drawn snapshot
        # The policy as accelerate prepared it (DDP-wrapped in multi-process runs); `unet`
        # stays the plain module for names, adapters and export.
        self.train_unet = None
        self._active = "policy"
        self._null_cond: dict[str, torch.Tensor] | None = None
        self.reference_digest: str | None = None  # the loaded reference's weights digest, when samples are shared
        for module in (*self.text_encoders, self.vae):
            if module is not None:
                module.requires_grad_(False).eval()

    # ------------------------------------------------------------------ geometry

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def sample_shape(self, resolution: int) -> tuple[int, ...]:
        """Shape of one model-space sample at `resolution` pixels: (C, h, w) or (C, F, h, w)."""
        cfg = self.unet.config
        channels = cfg.in_channels
        side = resolution // self.vae_scale_factor
        return (channels, self.num_frames, side, side) if self.is_video else (channels, side, side)

    @property
    def pixel_channels(self) -> int:
        """Channels of the pictures the model is fed: the VAE's input, or the UNet's own (pixel space)."""
        return self.vae.config.in_channels if self.vae is not None else self.unet.config.in_channels

    @property
    def vae_scale_factor(self) -> int:
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ trainable weights

    def setup_training(self, mode: str, *, lora_rank: int = 8, lora_alpha: float = 8.0,
                       lora_targets=("to_q", "to_k", "to_v", "to_out.0"), train_motion_only: bool = True) -> None:
        """Choose what trains and build the reference model beside it."""
        self.mode = mode
        unet = self.unet
        unet.requires_grad_(False)
        if mode == "lora":
            lora = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, init_lora_weights="gaussian",
                              target_modules=lora_target_modules(lora_targets, motion_only=self.is_video and train_motion_only))
            unet.add_adapter(lora, adapter_name=POLICY_ADAPTER)
            unet.add_adapter(lora, adapter_name=REFERENCE_ADAPTER)
            unet.set_adapter(POLICY_ADAPTER)
            # LoRA's B starts at zero, so θ_0 = the base model for both adapters.
            for name, p in unet.named_parameters():
                p.requires_grad_(f".{POLICY_ADAPTER}." in name and "lora_" in name)
        else:
            if self.is_video and train_motion_only:
                for name, p in unet.named_parameters():
                    p.requires_grad_("motion_modules" in name)
            else:
                unet.requires_grad_(True)
            self.reference_unet = copy.deepcopy(unet).requires_grad_(False).eval()

    def compile(self, scope: str, mode: str = "default") -> None:
        """torch.compile in place (parameter names stay, so reference switching still works).
        "reference" compiles the frozen copy that generates; "all" the policy too. A LoRA UNet
        serves both roles, so it is compiled whole."""
        if scope == "none":
            return
        if self.reference_unet is not None:
            self.reference_unet.compile(mode=mode)
        if self.reference_unet is None or scope == "all":
            self.unet.compile(mode=mode)

    def trainable_named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.unet.named_parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """An immutable CPU copy of the trainable weights, keyed by the policy's names. Sharded
        (FSDP) weights are gathered whole: then every process must call it (seppo.sharding)."""
        return {n: whole(p.detach()).to("cpu", copy=True) for n, p in self.trainable_named_parameters()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Whole weights in; each process keeps its own shard of sharded ones."""
        params = dict(self.trainable_named_parameters())
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(shard_like(params[n], v))

    def load_reference_state(self, state: dict[str, torch.Tensor], digest: str | None = None) -> None:
        """Put a pool snapshot into the reference model (frozen copy, or the reference adapter);
        `digest` names its weights for seppo.shared_samples."""
        self.reference_digest = digest
        if self.mode == "lora":
            named = dict(self.unet.named_parameters())
            with torch.no_grad():
                for n, v in state.items():
                    named[n.replace(f".{POLICY_ADAPTER}.", f".{REFERENCE_ADAPTER}.")].copy_(v)
        else:
            named = dict(self.reference_unet.named_parameters())
            with torch.no_grad():
                for n, v in state.items():
                    named[n].copy_(v)

    @contextmanager
    def as_reference(self) -> Iterator[None]:
        """Run `predict` as the reference model inside; the policy is restored even on error."""
        if self.mode == "lora":
            self.unet.set_adapter(REFERENCE_ADAPTER)
        previous, self._active = self._active, "reference"
        try:
            yield
        finally:
            self._active = previous
            if self.mode == "lora":
                self.unet.set_adapter(POLICY_ADAPTER)
                # peft's set_adapter marks the active adapter trainable: keep the reference frozen.
                for name, p in self.unet.named_parameters():
                    if f".{REFERENCE_ADAPTER}." in name:
                        p.requires_grad_(False)

    # ------------------------------------------------------------------ encoders

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Text conditioning as diffusers pipelines compute it (SD: last hidden state;
        SDXL: both encoders' penultimate hidden states concatenated, pooled from the second)."""
        device = self.device
        hidden, pooled = [], None
        for tokenizer, encoder in zip(self.tokenizers, self.text_encoders):
            ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids.to(device)
            if self.is_sdxl:
                out = encoder(ids, output_hidden_states=True)
                hidden.append(out.hidden_states[-2])
                pooled = out[0]  # text_embeds of CLIPTextModelWithProjection (the second encoder)
            else:
                hidden.append(encoder(ids)[0])
        cond = {"hidden": torch.cat(hidden, dim=-1)}  # (B, L, D1[+D2])
        if self.is_sdxl:
            cond["pooled"] = pooled
        return cond

    def null_cond(self, batch: int, *, for_guidance: bool = False) -> dict[str, torch.Tensor]:
        """The empty prompt's conditioning, (batch, ...): prompt dropout trains on it, and it is
        the unconditional branch of guidance — except for SDXL, whose pipelines guide against
        zero embeddings (`force_zeros_for_empty_prompt`), as we do too."""
        if self._null_cond is None:
            self._null_cond = self.encode_prompts([""])
        null = self._null_cond
        if for_guidance and self.is_sdxl:
            null = {k: torch.zeros_like(v) for k, v in null.items()}
        return {k: v.expand(batch, *v.shape[1:]) for k, v in null.items()}

    def time_ids(self, original_size: torch.Tensor, crop_top_left: torch.Tensor, resolution: int) -> torch.Tensor:
        """SDXL micro-conditioning (B, 6): original size, crop corner, target size."""
        target = torch.tensor([resolution, resolution], device=original_size.device).expand(original_size.shape[0], 2)
        return torch.cat([original_size, crop_top_left, target], dim=1).float()  # (B, 6)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [−1, 1] → model space. (B, C, H, W) images; (B, F, C, H, W) videos → (B, C, F, h, w)."""
        pixels = pixels.to(self.device)
        video = pixels.dim() == 5
        if video:
            b, f = pixels.shape[:2]
            pixels = pixels.flatten(0, 1)  # (B·F, C, H, W)
        if self.vae is None:
            x = pixels
        else:
            latents = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mean
            shift = self.vae.config.get("shift_factor") or 0.0
            x = ((latents - shift) * self.vae.config.scaling_factor).float()
        if video:
            x = x.view(b, f, *x.shape[1:]).transpose(1, 2)  # (B, C, F, h, w)
        return x

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model space → pixels in [−1, 1], same leading layout as `encode_images` gave."""
        video = x.dim() == 5
        if video:
            b, f = x.shape[0], x.shape[2]
            x = x.transpose(1, 2).flatten(0, 1)  # (B·F, C, h, w)
        if self.vae is not None:
            shift = self.vae.config.get("shift_factor") or 0.0
            x = self.vae.decode(x.to(self.vae.dtype) / self.vae.config.scaling_factor + shift).sample.float()
        x = x.clamp(-1, 1)
        if video:
            x = x.view(b, f, *x.shape[1:])  # (B, F, C, H, W)
        return x

    # ------------------------------------------------------------------ the denoiser

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """The active model's output (ε or v) for noisy samples x_t at timesteps t."""
        if self._active == "reference":
            unet = self.reference_unet if self.mode == "full" else self.unet
        else:
            unet = self.train_unet if self.train_unet is not None else self.unet
        hidden = cond["hidden"]
        if self.is_video:
            # UNetMotionModel wants the text repeated per frame: (B·F, L, D).
            hidden = hidden.repeat_interleave(x_t.shape[2], dim=0)
        kwargs = {}
        if self.is_sdxl:
            kwargs["added_cond_kwargs"] = {"text_embeds": cond["pooled"], "time_ids": cond["time_ids"]}
        dtype = next(unet.parameters()).dtype
        out = unet(x_t.to(dtype), t, encoder_hidden_states=hidden.to(dtype), **kwargs).sample
        return out.float()

    def denoising_error(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                        cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """e_m(x0) for the active model m, (B,): noise x0 with (t, ε), predict, compare with the target.

        1. x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε
        2. e_m = mean over non-batch dims of (m(x_t, t, c) − target)², target ε or v."""
        x_t = self.add_noise(x0, eps, t)
        return per_sample_error(self.predict(x_t, t, cond), self.target(x0, eps, t))

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε."""
        return self.scheduler.add_noise(x0, eps, t)

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε for epsilon prediction, v = √ᾱ_t·ε − √(1−ᾱ_t)·x0 for v-prediction."""
        if self.prediction_type == "epsilon":
            return eps
        return self.scheduler.get_velocity(x0, eps, t)


def per_sample_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """e_m(x): mean over all non-batch dimensions of (m(x_t, t, c) − target)², shape (B,)."""
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)


# ---------------------------------------------------------------------- builders


@contextmanager
def expected_warnings_silenced() -> Iterator[None]:
    """diffusers warns at every `.to(dtype=…)` of a model that keeps modules in float32
    ("There are modules in AutoencoderKL that should be kept in float32"), and similarly for
    `UNetMotionModel`; seppo casts on purpose, so these are not the user's concern. Errors
    still show."""
    level = diffusers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers.utils.logging.set_verbosity(level)


def lora_target_modules(targets, *, motion_only: bool) -> list[str] | str:
    """peft's `target_modules`: the named projections everywhere, or (video, `train_motion_only`)
    only those inside the motion modules, as a regex peft matches against the full module name
    (AnimateDiff's motion LoRAs adapt the temporal attention alone)."""
    if not motion_only:
        return list(targets)
    names = "|".join(re.escape(t) for t in targets)
    return rf".*motion_modules\..*\.({names})"


def load_backbone(path: str | Path, *, single_file: str = "", motion_adapter: str = "", num_frames: int = 0,
                  prediction_type: str = "auto", device: str | torch.device = "cpu",
                  frozen_dtype: torch.dtype = torch.float32) -> Backbone:
    """Load a local diffusers folder (embedded tiny, SD-1.x/2.x, SDXL; + MotionAdapter for video)."""
    with expected_warnings_silenced():
        return _load_backbone(path, single_file=single_file, motion_adapter=motion_adapter, num_frames=num_frames,
                              prediction_type=prediction_type, device=device, frozen_dtype=frozen_dtype)


def _load_backbone(path, *, single_file, motion_adapter, num_frames, prediction_type, device, frozen_dtype) -> Backbone:
    # No per-file "Loading weights" bars: seppo shows its own progress.
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()
    root = Path(path)
    _require_folder(root, "model folder")
    if single_file:
        file = Path(single_file)
        if not file.is_file():
            raise ModelError(f"UNet checkpoint file not found: {file}")
        try:
            unet = UNet2DConditionModel.from_single_file(str(file), config=str(root), subfolder="unet")
        except Exception as e:  # diffusers raises many types for a file that is not a checkpoint
            raise ModelError(f"{file}: not a loadable UNet checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    else:
        unet = _load(UNet2DConditionModel, root / "unet", "UNet (unet/)")
    scheduler = _load(DDPMScheduler, root / "scheduler", "scheduler (scheduler/)")
    tokenizers = [_load(CLIPTokenizer, root / "tokenizer", "tokenizer (tokenizer/)")]
    text_encoders = [_load(CLIPTextModel, root / "text_encoder", "text encoder (text_encoder/)")]
    if (root / "text_encoder_2").exists():
        tokenizers.append(_load(CLIPTokenizer, root / "tokenizer_2", "tokenizer (tokenizer_2/)"))
        text_encoders.append(_load(CLIPTextModelWithProjection, root / "text_encoder_2", "text encoder (text_encoder_2/)"))
    vae = _load(AutoencoderKL, root / "vae", "VAE (vae/)") if (root / "vae").exists() else None
    is_video = bool(motion_adapter)
    if is_video:
        adapter = _load(MotionAdapter, Path(motion_adapter), "motion adapter")
        unet = UNetMotionModel.from_unet2d(unet, adapter)
    unet.to(device)
    for m in (*text_encoders, vae):
        if m is not None:
            m.to(device=device, dtype=frozen_dtype)
    return Backbone(unet=unet, text_encoders=text_encoders, tokenizers=tokenizers, scheduler=scheduler, vae=vae,
                    prediction_type=prediction_type, source=str(root), is_video=is_video, num_frames=num_frames)
