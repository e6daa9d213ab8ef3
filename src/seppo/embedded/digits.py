"""Real digits, prompts and the pixel conversions every embedded module shares.

Pixel convention, used everywhere in the embedded world:

| where           | type                        | range               | ink          |
|-----------------|-----------------------------|---------------------|--------------|
| arrays/tensors  | float32 (..., 16, 16)       | [-1, 1]             | +1 (white)   |
| PIL boundary    | 'L' mode, 16x16             | 0..255              | 255 (white)  |

`load_digits` stores ink as 0..16 on 8x8, so ink stays the high value here too.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.spatial.distance import pdist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

IMAGE_SIZE = 16
DIGIT_PROMPT = "a handwritten digit {d}"
SPLITS = ("all", "annotator", "judge")
# Fixed so the annotator half and the judge half never change between runs or machines.
SPLIT_SEED = 0

# "a handwritten digit 3", "a handwritten 3 moving left": the first standalone digit.
_DIGIT_RE = re.compile(r"(?<!\d)(\d)(?!\d)")


def digit_prompt(d: int) -> str:
    """The prompt for digit `d`, e.g. "a handwritten digit 3"."""
    if not 0 <= int(d) <= 9:
        raise ValueError(f"digit must be 0..9, got {d}")
    return DIGIT_PROMPT.format(d=int(d))


def parse_digit(prompt: str) -> int | None:
    """The digit a prompt asks for, or None when it names no single digit (e.g. "")."""
    match = _DIGIT_RE.search(prompt or "")
    return int(match.group(1)) if match else None


@lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)  # (N, 8, 8) in [0, 1]
    x = x[:, None]  # (N, 1, 8, 8): interpolate wants a channel dim
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    images = (x[:, 0].numpy() * 2.0 - 1.0).clip(-1.0, 1.0).astype(np.float32)  # (N, 16, 16)
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)  # cached and shared: callers copy before editing
    labels.setflags(write=False)
    return images, labels


def real_digits(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Real digits as (images float32 (N, 16, 16) in [-1, 1], labels int64 (N,)).

    "annotator" and "judge" are a fixed, stratified, disjoint 50/50 split of "all", so the
    simulated annotator and the evaluation judge are fitted on different digits.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = _all_digits()
    if split == "all":
        return images.copy(), labels.copy()
    annotator_idx, judge_idx = train_test_split(
        np.arange(len(labels)), test_size=0.5, stratify=labels, random_state=SPLIT_SEED
    )
    idx = np.sort(annotator_idx if split == "annotator" else judge_idx)
    return images[idx].copy(), labels[idx].copy()


def to_pil(array: np.ndarray) -> Image.Image:
    """(16, 16) array in [-1, 1] -> PIL 'L' image, ink white."""
    pixels = np.rint((np.clip(np.asarray(array, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5)
    return Image.fromarray(pixels.astype(np.uint8), mode="L")


def from_pil(image: Image.Image) -> np.ndarray:
    """PIL image (any mode) -> float32 (16, 16) array in [-1, 1].

    Other sizes are resized (bilinear) so a judge can score any generator's output.
    """
    image = image.convert("L")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def diversity(images: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise L2 distance between images of the same class, averaged over classes.

    Distances are in [-1, 1] pixel units over the flattened image. Reported next to the judge
    reward because a judge can be gamed by one blurry prototype per class (diversity ~ 0).
    Classes with fewer than two images are skipped; 0.0 if no class has two.
    """
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)  # (N, H*W)
    labels = np.asarray(labels)
    per_class = []
    for c in np.unique(labels):
        x = flat[labels == c]  # (n_c, H*W)
        if len(x) >= 2:
            # pdist, not the Gram-matrix trick: identical images must give exactly 0.
            per_class.append(pdist(x).mean())
    return float(np.mean(per_class)) if per_class else 0.0
