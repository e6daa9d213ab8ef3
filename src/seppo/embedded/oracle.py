"""Judges only a simulation has: the annotator's own utility and its stroke-weight term.

- `oracle`: u(x, d) = P_annot(d | x) + λ·stroke(x, d), the simulated user's own utility
  (`seppo.embedded.judge.Annotator`). It is the analogue of asking the people who made the
  data; real data lacks it, so it is labelled as the simulation's oracle wherever it appears.
- `stroke`: stroke(x, d) ∈ [0, 1] alone, the annotator's taste for a typical pen weight.
  Reported beside the class-correctness judge (`digit`, the analogue of a CLIP score) and
  diversity, so a trade-off between the parts of the preference stays visible.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from seppo.embedded.digits import from_pil
from seppo.embedded.judge import Annotator, load_annotator, prompt_digits


def _arrays(images: Sequence[Image.Image], prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    digits = prompt_digits(prompts)
    arrays = np.stack([from_pil(im) for im in images]) if len(images) else np.zeros((0, 16, 16))
    return arrays, digits


class OracleJudge:
    """u(x, d), the annotator's own utility: the simulation's oracle."""

    name = "oracle"
    scale = ("simulation's oracle: the annotator's own utility, which real data lacks "
             "(u = P_annot(d|x) + 0.2·stroke, 0 to 1.2)")

    def __init__(self, annotator: Annotator):
        self.annotator = annotator

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        arrays, digits = _arrays(images, prompts)
        return self.annotator.utility(arrays, digits) if len(arrays) else np.zeros(0)


class StrokeJudge:
    """stroke(x, d): the stroke-weight term of the annotator's utility, alone."""

    name = "stroke"
    scale = "stroke-weight term of the annotator's utility (simulation only): 1 at a digit's typical ink share, 0 to 1"

    def __init__(self, annotator: Annotator):
        self.annotator = annotator

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        arrays, digits = _arrays(images, prompts)
        return self.annotator.stroke(arrays, digits) if len(arrays) else np.zeros(0)


def load_oracle() -> OracleJudge:
    return OracleJudge(load_annotator())


def load_stroke() -> StrokeJudge:
    return StrokeJudge(load_annotator())
