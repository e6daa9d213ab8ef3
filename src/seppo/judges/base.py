"""The interface every judge implements."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from PIL import Image


class Judge(Protocol):
    """Scores images for prompts. Higher is better.

    `name` is the column name in tables ("pickscore", "digit"); `scale` says in words what
    the number means ("100 x cosine", "probability of the prompted class").
    """

    name: str
    scale: str

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """Return one float per image, shape (len(images),)."""
        ...
