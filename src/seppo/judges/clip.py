"""CLIP-based judges from local weights: PickScore, CLIP score, HPSv2, LAION aesthetic,
and (optionally) ImageReward.

Symbols, for one (image x, prompt c) pair:

| name in code   | symbol                       | meaning                                   |
|----------------|------------------------------|-------------------------------------------|
| `image_embeds` | v = f_I(x) / ‖f_I(x)‖        | projected CLIP image feature, unit length |
| `text_embeds`  | u = f_T(c) / ‖f_T(c)‖        | projected CLIP text feature, unit length  |
| `cosine`       | cos(u, v) = uᵀv              | in [-1, 1]                                |

- PickScore (Kirstain et al. 2023):  s = exp(τ) · uᵀv, with τ the model's `logit_scale`
  (τ = ln 100 in `yuvalkirstain/PickScore_v1`, so s ≈ 21 for typical images).
- CLIP score and HPSv2 (Wu et al. 2023): s = 100 · uᵀv (HPSv2 ≈ 27 for typical images).
- LAION aesthetic: s = MLP(v) with v from CLIP ViT-L/14 (≈ 5–6).

transformers' `CLIPImageProcessor` falls back to its PIL backend when torchvision is missing,
so none of this needs torchvision. Images are converted to RGB first: the embedded demo's
digits are greyscale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from transformers import AutoProcessor, CLIPConfig, CLIPModel

from seppo.errors import ConfigError, ModelError
from seppo.judges.hps import load_hps_model

# Hidden widths of the LAION "improved aesthetic predictor" MLP after its input layer.
AESTHETIC_WIDTHS = (1024, 128, 64, 16, 1)


def _existing(path: str | Path, what: str) -> Path:
    """Check a path before handing it to from_pretrained, which would try the Hub instead."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{what} not found: {path}")
    return path


def load_clip_model(path: str | Path) -> CLIPModel:
    """A transformers `CLIPModel` from a local folder, in eval mode; `ModelError` if unreadable."""
    path = _existing(path, "CLIP model folder")
    try:
        return CLIPModel.from_pretrained(path).eval()
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load CLIP model from {path}: {str(err).splitlines()[0]}") from err


def load_clip_processor(path: str | Path):
    """The tokenizer + image processor pair saved with a CLIP model (e.g. the laion ViT-H-14 folder)."""
    path = _existing(path, "CLIP processor folder")
    try:
        return AutoProcessor.from_pretrained(path)
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f"cannot load CLIP processor from {path}: {str(err).splitlines()[0]}") from err


def _pooled(output) -> torch.Tensor:
    """transformers < 5 returns the projected features; 5.x wraps them in `pooler_output`."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipEmbedder:
    """Batched, unit-length CLIP embeddings u (text) and v (images) from one model + processor."""

    def __init__(self, model: CLIPModel, processor, device: str = "cpu", batch_size: int = 16):
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def image_embeds(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """v = f_I(x) / ‖f_I(x)‖, shape (B, D)."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            pixels = self.processor.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            features = _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1))
        return torch.cat(chunks)  # (B, D)

    @torch.no_grad()
    def text_embeds(self, prompts: Sequence[str]) -> torch.Tensor:
        """u = f_T(c) / ‖f_T(c)‖, shape (B, D). Long prompts are cut at the context length."""
        max_length = self.model.config.text_config.max_position_embeddings
        chunks = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.processor.tokenizer(
                list(prompts[start : start + self.batch_size]), padding=True, truncation=True,
                max_length=max_length, return_tensors="pt",
            ).to(self.device)
            features = _pooled(
                self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            )
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1))
        return torch.cat(chunks)  # (B, D)


def _check_pairs(images: Sequence, prompts: Sequence) -> None:
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; a judge scores pairs")


class _ScaledCosineJudge:
    """s_i = scale · cos(u_i, v_i) for each (image, prompt) pair; subclasses pick the scale."""

    name = "cosine"
    scale = "scale x cosine"

    def __init__(self, embedder: ClipEmbedder):
        self.embedder = embedder

    def cosine_scale(self) -> float:
        return 100.0

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        _check_pairs(images, prompts)
        if not images:
            return np.zeros(0, dtype=np.float64)
        cosine = (self.embedder.text_embeds(prompts) * self.embedder.image_embeds(images)).sum(-1)  # (B,)
        return (self.cosine_scale() * cosine).double().cpu().numpy()


def clip_embedder(model_path, processor_path=None, device: str = "cpu", batch_size: int = 16) -> "ClipEmbedder":
    """A CLIP folder (and its processor, by default the same folder) ready to embed."""
    return ClipEmbedder(load_clip_model(model_path), load_clip_processor(processor_path or model_path), device, batch_size)


class PickScoreJudge(_ScaledCosineJudge):
    """PickScore: exp(τ) · cos(u, v), with the model's own logit scale τ (exp(τ) = 100).

    `model_path` is a `yuvalkirstain/PickScore_v1` folder; `processor_path` the
    `laion/CLIP-ViT-H-14-laion2B-s32B-b79K` folder (defaults to `model_path`).
    """

    name = "pickscore"
    scale = "logit_scale.exp() x cosine (PickScore, ~21)"

    def __init__(self, model_path, processor_path=None, device: str = "cpu", batch_size: int = 16):
        super().__init__(clip_embedder(model_path, processor_path, device, batch_size))

    def cosine_scale(self) -> float:
        return float(self.embedder.model.logit_scale.detach().exp())


class ClipScoreJudge(_ScaledCosineJudge):
    """CLIP score: 100 · cos(u, v), not clipped at 0 (torchmetrics' CLIPScore clips)."""

    name = "clip"
    scale = "100 x cosine of CLIP text and image embeddings"

    def __init__(self, model_path, processor_path=None, device: str = "cpu", batch_size: int = 16):
        super().__init__(clip_embedder(model_path, processor_path, device, batch_size))


class HPSv2Judge(_ScaledCosineJudge):
    """HPSv2 / v2.1: 100 · cos(u, v) with open_clip ViT-H-14 weights converted by `judges.hps`.

    `checkpoint_path` is `HPS_v2_compressed.pt` or `HPS_v2.1_compressed.pt`; `processor_path`
    is a folder with the ViT-H-14 tokenizer and image processor (the laion
    CLIP-ViT-H-14-laion2B-s32B-b79K folder; defaults to the checkpoint's folder).
    `clip_config` overrides the ViT-H-14 geometry (tests use a tiny one).
    Scores are comparable only across images for the same prompt (HPSv2 maintainers).
    """

    scale = "100 x cosine (HPSv2, ~27)"

    def __init__(
        self, checkpoint_path, version: str = "v2", clip_config: CLIPConfig | None = None,
        processor_path=None, device: str = "cpu", batch_size: int = 16,
    ):
        names = {"v2": "hps", "v2.1": "hpsv2.1"}
        if version not in names:
            raise ConfigError(f"HPS version must be one of {sorted(names)}, got {version!r}")
        self.name = names[version]
        model = load_hps_model(checkpoint_path, clip_config)
        processor = load_clip_processor(processor_path or Path(checkpoint_path).parent)
        super().__init__(ClipEmbedder(model, processor, device, batch_size))


def aesthetic_mlp(in_dim: int = 768) -> nn.Sequential:
    """The LAION improved-aesthetic-predictor head, layer for layer, so its state dict loads.

    Linear(in,1024) Dropout(.2) Linear(1024,128) Dropout(.2) Linear(128,64) Dropout(.1)
    Linear(64,16) Linear(16,1): no nonlinearity (the original has its ReLUs commented out),
    so in eval mode the head is one affine map of v.
    """
    w = (in_dim, *AESTHETIC_WIDTHS)
    return nn.Sequential(
        nn.Linear(w[0], w[1]), nn.Dropout(0.2),
        nn.Linear(w[1], w[2]), nn.Dropout(0.2),
        nn.Linear(w[2], w[3]), nn.Dropout(0.1),
        nn.Linear(w[3], w[4]),
        nn.Linear(w[4], w[5]),
    )


def _read_head(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the user's problem, named here
        raise ModelError(f"cannot read aesthetic head {path}: {str(err).splitlines()[0]}") from err
    # The LAION file is the state dict of a module holding `self.layers = nn.Sequential(...)`.
    return {key.removeprefix("layers."): value for key, value in state.items()}


class AestheticJudge:
    """LAION aesthetic score: MLP(v), v the unit-length CLIP ViT-L/14 image embedding.

    `clip_path` is an `openai/clip-vit-large-patch14` folder (model and processor);
    `head_path` is `sac+logos+ava1-l14-linearMSE.pth`. The head's input width is the CLIP
    model's `projection_dim` (768 for ViT-L/14). The prompt is ignored.
    """

    name = "aesthetic"
    scale = "LAION aesthetic predictor output (~1-10, typical 5-6)"

    def __init__(self, clip_path, head_path, processor_path=None, device: str = "cpu", batch_size: int = 16):
        self.embedder = clip_embedder(clip_path, processor_path, device, batch_size)
        head_path = _existing(head_path, "aesthetic head file")
        self.head = aesthetic_mlp(self.embedder.model.config.projection_dim)
        try:
            self.head.load_state_dict(_read_head(head_path))
        except RuntimeError as err:  # missing keys or a head built for another CLIP width
            detail = " ".join(str(err).split())[:300]
            raise ModelError(f"aesthetic head {head_path} does not fit this CLIP: {detail}") from err
        self.head.to(device).eval()

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        _check_pairs(images, prompts)
        if not images:
            return np.zeros(0, dtype=np.float64)
        v = self.embedder.image_embeds(images)  # (B, D)
        return self.head(v).squeeze(-1).double().cpu().numpy()  # (B, 1) -> (B,)


class ImageRewardJudge:
    """ImageReward (Xu et al. 2023), through the optional `image-reward` package.

    Its `score` is already normalised: (r − 0.16717) / 1.03334, typically in [−2, 2].
    `path` is a local `ImageReward.pt`; `med_config` its `med_config.json` (otherwise the
    package fetches it from the Hub). The package also loads `bert-base-uncased`, which must
    be in the local Hugging Face cache when offline.
    """

    name = "imagereward"
    scale = "normalised ImageReward, (r - 0.16717) / 1.03334"

    def __init__(self, path, med_config=None, device: str = "cpu"):
        try:
            import ImageReward as reward_lib  # optional dependency
        except ImportError as err:
            raise ModelError(
                "the imagereward judge needs the optional package `image-reward` (pip install image-reward)"
            ) from err
        path = _existing(path, "ImageReward checkpoint")
        kwargs = {"med_config": str(_existing(med_config, "ImageReward med_config"))} if med_config else {}
        self.model = reward_lib.load(str(path), device=device, **kwargs)

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        _check_pairs(images, prompts)
        scores = [self.model.score(prompt, image.convert("RGB")) for image, prompt in zip(images, prompts)]
        return np.asarray(scores, dtype=np.float64).reshape(len(images))
