"""Resize, crop, flip and scale an image (or every frame of a video) into a [-1, 1] tensor.

SDXL conditions on the original size and the crop corner (`add_time_ids`), so the result
keeps both next to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from seppo.errors import ConfigError


@dataclass
class Transformed:
    """Pixels (C, H, W) for an image or (F, C, H, W) for a video, in [-1, 1].

    `original_size` is (height, width) before resizing; `crop_top_left` is (top, left) in the
    resized image. A flip leaves `crop_top_left` as it was: it names where the crop came from.
    """

    pixels: torch.Tensor
    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]


class ImageTransform:
    """Shorter side to `resolution`, then a `resolution`² crop, an optional flip, and scaling.

    `crop` is "center" or "random" (drawn from the generator passed in). `hflip` records that
    the run flips at random; the transform itself flips only when called with `flip=True`, so
    the coin comes from the caller's seeded per-sample stream (`loader.flip_mask`), or the
    cache stores both orientations. `channels=1` gives greyscale.
    """

    def __init__(self, resolution: int, *, crop: str = "center", hflip: bool = False, channels: int = 3):
        if crop not in ("center", "random"):
            raise ConfigError(f"data.crop is {crop!r}, expected 'center' or 'random'")
        if channels not in (1, 3):
            raise ConfigError(f"data.channels is {channels}, expected 1 or 3")
        self.resolution, self.crop, self.hflip, self.channels = resolution, crop, hflip, channels

    def settings(self) -> dict:
        """What changes the output: part of the latent cache key."""
        return {"resolution": self.resolution, "crop": self.crop, "hflip": self.hflip,
                "channels": self.channels}

    def __call__(
        self, img: Image.Image, *, generator: torch.Generator | None = None, flip: bool = False
    ) -> Transformed:
        return self.frames([img], generator=generator, flip=flip, stack=False)

    def frames(
        self,
        frames: list[Image.Image],
        *,
        generator: torch.Generator | None = None,
        flip: bool = False,
        stack: bool = True,
    ) -> Transformed:
        """Transform all frames with one crop and one flip; pixels (F, C, H, W) if `stack`."""
        width, height = frames[0].size
        resized_w, resized_h = self._resized_size(width, height)
        top, left = self._crop_corner(resized_h, resized_w, generator)
        tensors = [self._one(frame, (resized_w, resized_h), top, left, flip) for frame in frames]
        pixels = torch.stack(tensors) if stack else tensors[0]  # (F, C, H, W) or (C, H, W)
        return Transformed(pixels, (height, width), (top, left))

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        scale = self.resolution / min(width, height)
        # max(): rounding must never leave a side shorter than the crop.
        return max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale))

    def _crop_corner(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int]:
        slack_h, slack_w = height - self.resolution, width - self.resolution
        if self.crop == "center":
            return round(slack_h / 2), round(slack_w / 2)
        top = int(torch.randint(0, slack_h + 1, (1,), generator=generator).item())
        left = int(torch.randint(0, slack_w + 1, (1,), generator=generator).item())
        return top, left

    def _one(self, img: Image.Image, size: tuple[int, int], top: int, left: int, flip: bool) -> torch.Tensor:
        img = img.convert("L" if self.channels == 1 else "RGB")
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)  # PIL's resize antialiases
        img = img.crop((left, top, left + self.resolution, top + self.resolution))
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(img, dtype=np.float32).reshape(self.resolution, self.resolution, self.channels)
        pixels = torch.from_numpy(array).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
        return pixels / 127.5 - 1.0


def transform_video(
    frames: list[Image.Image],
    transform: ImageTransform,
    *,
    generator: torch.Generator | None = None,
    flip: bool = False,
) -> Transformed:
    """All frames of a video with the same crop and flip: pixels (F, C, H, W)."""
    return transform.frames(frames, generator=generator, flip=flip)


def transform_visual(
    visual, transform: ImageTransform, *, generator: torch.Generator | None = None, flip: bool = False
) -> Transformed:
    """An image gives (C, H, W), a video (a list of frames) gives (F, C, H, W)."""
    if isinstance(visual, list):
        return transform_video(visual, transform, generator=generator, flip=flip)
    return transform(visual, generator=generator, flip=flip)
