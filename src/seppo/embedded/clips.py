"""Moving digits: the embedded video world's clips and prompts, a Pick-a-Pic of clips in miniature.

A clip is `num_frames` 16×16 frames of one real digit sliding `speed` pixels per frame in
the direction its prompt names: "a handwritten digit 3 moving left".

Choices (ours), and why:
- **The canvas is a torus** (`np.roll`): what leaves on the left re-enters on the right.
  Every frame then holds the whole digit, so the per-frame judges can roll each frame back
  onto the first frame and score which digit it is, and phase correlation measures the
  shift exactly (seppo.embedded.video_judges). A padded canvas would push half the digit out
  of frame after 8 pixels.
- **A clip sets off from the digit as given** (frame 0 holds it), 4 frames at 2 px a frame.
  Centred in time (the middle frame holding the digit, as this world had it first), a clip and
  its opposite cover the same places on the torus, and the base video model learned the axis of
  motion but not its sign (benchmarks/video-base/README.md §00).
- **The prompt keeps the image prompt as its prefix** ("a handwritten digit 3" + " moving
  left", 8 tokens with bos/eos): the tiny CLIP encoder is causal, so the digit's tokens encode
  exactly as the image base learned them and only the direction tokens are new.
  `parse_digit` reads either form, `parse_direction` the last direction word.

Pixel convention as in `seppo.embedded.digits`: arrays in [-1, 1], ink +1; PIL 'L' frames.

| name            | meaning                                                          |
|-----------------|------------------------------------------------------------------|
| `clip`, `video` | (F, 16, 16) array in [-1, 1], or a list of F PIL frames          |
| `u`             | the prompted direction as (dy, dx): left (0, −1), down (1, 0)     |
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from seppo.embedded.digits import IMAGE_SIZE, from_pil, real_digits, to_pil

DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (dy, dx), y grows downwards
VIDEO_PROMPT = "a handwritten digit {d} moving {direction}"
NUM_FRAMES = 4
SPEED = 2  # pixels per frame
GIF_FRAME_MS = 120


def video_prompt(d: int, direction: str) -> str:
    """"a handwritten digit 3 moving left"."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not 0 <= int(d) <= 9:
        raise ValueError(f"digit must be 0..9, got {d}")
    return VIDEO_PROMPT.format(d=int(d), direction=direction)


def parse_direction(prompt: str) -> str | None:
    """The last direction word of a prompt ("... moving left" → "left"), or None."""
    words = [w.strip(".,;!") for w in (prompt or "").lower().split()]
    found = [w for w in words if w in DIRECTIONS]
    return found[-1] if found else None


def moving_clip(digit_image: np.ndarray, direction: str, num_frames: int = NUM_FRAMES, speed: int = SPEED, *,
                centred: bool = False) -> np.ndarray:
    """(16, 16) digit → (F, 16, 16) clip sliding `speed` px/frame on a torus, setting off from
    the digit as given: frame f is shifted by f·speed·u. `centred`: shifted by (f − (F−1)//2)·speed·u
    instead, so the middle frame is the digit as given (the world's first layout, kept for
    benchmarks/video-base)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    dy, dx = DIRECTIONS[direction]
    image = np.asarray(digit_image, dtype=np.float32)
    offsets = (np.arange(num_frames) - ((num_frames - 1) // 2 if centred else 0)) * speed
    return np.stack([np.roll(image, (dy * k, dx * k), axis=(0, 1)) for k in offsets])  # (F, 16, 16)


def real_clips(split: str = "all", *, num_frames: int = NUM_FRAMES, speed: int = SPEED
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every real digit of `split` in every direction: clips (4N, F, 16, 16), digits (4N,), directions."""
    images, labels = real_digits(split)
    clips, digits, directions = [], [], []
    for direction in DIRECTIONS:
        clips.extend(moving_clip(im, direction, num_frames, speed) for im in images)
        digits.extend(labels.tolist())
        directions.extend([direction] * len(images))
    return np.stack(clips).astype(np.float32), np.asarray(digits, dtype=np.int64), directions


def clip_arrays(videos: Sequence) -> np.ndarray:
    """Videos as PIL frame lists or arrays → (N, F, 16, 16) float32 in [-1, 1]."""
    out = []
    for video in videos:
        if isinstance(video, np.ndarray):
            out.append(video.astype(np.float32))
        else:
            out.append(np.stack([from_pil(frame) for frame in video]))
    if len({v.shape for v in out}) > 1:
        raise ValueError("videos differ in frame count or size")
    return np.stack(out) if out else np.zeros((0, NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE), np.float32)


def to_frames(clip: np.ndarray) -> list[Image.Image]:
    """(F, 16, 16) array in [-1, 1] → F PIL 'L' frames."""
    return [to_pil(frame) for frame in clip]


def gif_bytes(frames: Sequence[Image.Image], *, scale: int = 1) -> bytes:
    """An animated, looping, lossless grey GIF of exactly len(frames) frames.

    Pillow merges a frame identical to the one before it into a longer frame, which would
    drop frames on reading. Where two consecutive frames are identical we change the first
    pixel of the later one by one grey level (≤ 0.008 in [-1, 1] units) so all survive.
    """
    arrays = [np.asarray(f.convert("L"), dtype=np.uint8).copy() for f in frames]
    for i in range(1, len(arrays)):
        if np.array_equal(arrays[i], arrays[i - 1]):
            arrays[i][0, 0] = arrays[i][0, 0] + 1 if arrays[i][0, 0] < 255 else 254
    images = [Image.fromarray(a, mode="L") for a in arrays]
    if scale != 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in images]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=GIF_FRAME_MS, optimize=False)
    return buffer.getvalue()


def all_video_prompts(digits: Sequence[int] = range(10)) -> list[str]:
    """Every (digit, direction) cell's prompt, digit-major: 4·d + direction."""
    return [video_prompt(d, r) for d in digits for r in DIRECTIONS]
