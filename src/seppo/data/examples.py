"""The one record type every winner source yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from PIL import Image

# An image, or a video as a list of frames (all the same size).
Visual = Union[Image.Image, list]


@dataclass
class Example:
    """One prompt with its winning image or video, and the loser where the source has one.

    `where` names the origin for error messages and logs, e.g. "train-0003.parquet row 17"
    or "images/metadata.jsonl line 4".
    """

    prompt: str
    winner: Visual
    loser: Visual | None = None
    where: str = ""
