"""Resolve a MODEL argument and turn model-space samples into pictures.

A MODEL (for `sample`, `eval`, `report`) is any of:
- a run directory: its `final/` export is used;
- a diffusers folder (the embedded tiny model, SD-1.x/2.x, SDXL);
- `BASE+LORA`: a base folder plus a folder holding diffusers-format LoRA weights
  (`pytorch_lora_weights.safetensors`), as `pipe.load_lora_weights` reads them.
A LoRA export of seppo records its base in `seppo_base.json`, so a run directory trained
with LoRA resolves on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from peft import LoraConfig
from PIL import Image
from safetensors.torch import load_file

from seppo import rng
from seppo.backbone import POLICY_ADAPTER, Backbone, load_backbone
from seppo.errors import ModelError
from seppo.run_dir import RunDir
from seppo.sampler import generate

LORA_FILE = "pytorch_lora_weights.safetensors"


def resolve_model(spec: str) -> tuple[Path, Path | None, str, str]:
    """MODEL → (base folder, LoRA folder or None, motion adapter folder or "", prediction type or "auto")."""
    base_s, _, lora_s = spec.partition("+")
    base = Path(base_s)
    if (base / "final").is_dir():  # a run directory
        base = base / "final"
    if not base.is_dir():
        raise ModelError(f"model not found: {base_s} (expected a run directory, a diffusers folder, or BASE+LORA)")
    lora = Path(lora_s) if lora_s else None
    motion, prediction_type = "", "auto"
    info = base / "seppo_base.json"
    if info.exists():  # a LoRA export that names its base (and the prediction type trained on)
        meta = json.loads(info.read_text())
        lora, base = base, Path(meta["base"])
        motion = meta.get("motion_adapter", "")
        prediction_type = meta.get("prediction_type", "auto")
    if lora is not None and not (lora / LORA_FILE).exists():
        raise ModelError(f"{lora}: no {LORA_FILE} (not a diffusers LoRA folder)")
    return base, lora, motion, prediction_type


def load_for_sampling(spec: str, *, device: str | torch.device = "cpu", num_frames: int = 0) -> Backbone:
    """A Backbone whose policy is the given model, ready to generate."""
    base, lora, motion, prediction_type = resolve_model(spec)
    if (base / "motion_adapter").is_dir() and not motion:
        motion = str(base / "motion_adapter")
    if motion and not num_frames:  # a run directory records its clip length; else AnimateDiff's usual 8
        run = RunDir.of(spec)
        num_frames = run.config().data.num_frames if run is not None else 8
    backbone = load_backbone(base, motion_adapter=motion, num_frames=num_frames, prediction_type=prediction_type,
                             device=device)
    if lora is not None:
        load_lora(backbone.unet, lora)
    backbone.unet.eval()
    return backbone


def load_lora(unet, folder: Path) -> None:
    """Diffusers-format LoRA weights into `unet`, the way `pipe.load_lora_weights(folder)` does.

    The adapter's LoraConfig (alpha included) comes from the file's metadata; exports written
    before it was stored there fall back on `seppo_lora.json` (rank, alpha, targets)."""
    try:
        state, alphas, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(str(folder), weight_name=LORA_FILE,
                                                                                return_lora_metadata=True)
        if not metadata and (folder / "seppo_lora.json").exists():
            meta = json.loads((folder / "seppo_lora.json").read_text())
            metadata = {"unet." + k: v for k, v in LoraConfig(r=meta["rank"], lora_alpha=meta["alpha"],
                                                                target_modules=meta["targets"]).to_dict().items()}
            alphas = None
        StableDiffusionLoraLoaderMixin.load_lora_into_unet(state, alphas, unet=unet, metadata=metadata or None,
                                                          adapter_name=POLICY_ADAPTER)  # the pool snapshots' names
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ModelError(f"{folder}: LoRA weights do not fit the base model ({str(e).splitlines()[0]})") from None
    loaded = sum(1 for n, _ in unet.named_parameters() if ".lora_" in n)
    if loaded != len(state):
        raise ModelError(f"{folder}: LoRA weights do not fit the base model ({len(state)} tensors, {loaded} placed)")


def to_images(pixels: torch.Tensor) -> list:
    """Pixels in [−1, 1], (B, C, H, W) → PIL images; (B, F, C, H, W) → lists of frames."""
    if pixels.dim() == 5:
        return [to_images(clip) for clip in pixels]
    arr = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    if arr.shape[-1] == 1:
        return [Image.fromarray(a[..., 0], mode="L") for a in arr]
    return [Image.fromarray(a) for a in arr]


@torch.no_grad()
def sample(backbone: Backbone, prompts: Sequence[str], *, seeds: Sequence[int], resolution: int, steps: int,
           guidance: float, eta: float = 0.0, batch_size: int = 64, progress=None) -> list:
    """One picture per (prompt, seed) pair, deterministic in (seed, prompt index) whatever the
    batch size. `seeds[i]` keys sample i's noise (stream "eval")."""
    out = []
    shape = backbone.sample_shape(resolution)
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        cond = backbone.encode_prompts(chunk)
        x = generate(backbone, cond, shape=shape, seed=0, step=0, indices=list(seeds[start:start + batch_size]),
                     steps=steps, guidance=guidance, eta=eta, stream="eval")
        out.extend(to_images(backbone.decode(x)))
        if progress is not None:
            progress.update(len(chunk))
    return out


def grid(images: Sequence, *, columns: int, scale: int = 1) -> Image.Image:
    """Tile images (or the first frame of clips) into one grid picture."""
    images = [im[0] if isinstance(im, list) else im for im in images]
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new(images[0].mode, (columns * w, rows * h))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    if scale != 1:
        sheet = sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST)
    return sheet


def eval_seeds(seed: int, n: int) -> list[int]:
    """Sample keys for evaluation noise: distinct per (seed, i), shared across models."""
    return [int(rng.sample_seed(seed, "eval", 0, i) % (2**31)) for i in range(n)]


def load_snapshot(backbone: Backbone, path: Path) -> None:
    """Put pool snapshot θ_J into the backbone's UNet (a run's final model, loaded for sampling).

    Snapshots hold the trainable weights under the policy UNet's parameter names (the full
    UNet, the motion modules, or the LoRA adapter "default"), so every key must land.
    """
    state = load_file(str(path))
    result = backbone.unet.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ModelError(f"{path}: {len(result.unexpected_keys)} snapshot weights do not fit the model "
                         f"(first: {result.unexpected_keys[0]})")
    backbone.unet.eval()
