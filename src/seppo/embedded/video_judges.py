"""The "moving digits" world: the embedded video default, a Pick-a-Pic of clips in miniature.

A clip is `num_frames` 16×16 frames of one real digit sliding `speed` pixels per frame in
the direction its prompt names: "a handwritten digit 3 moving left".

Choices (ours), and why:
- **The canvas is a torus** (`np.roll`): what leaves on the left re-enters on the right.
  Every frame then holds the whole digit, so the per-frame judges can roll each frame back
  onto the middle frame (`align_to_middle`) and score which digit it is, and phase
  correlation measures the shift exactly. A padded canvas would push half the digit out of frame after 8 pixels.
- **The prompt keeps the image prompt as its prefix** ("a handwritten digit 3" + " moving
  left", 8 tokens with bos/eos): the tiny CLIP encoder is causal, so the digit's tokens encode
  exactly as the image base learned them and only the direction tokens are new.
  `parse_digit` reads either form, `parse_direction` the last direction word.
- **Two motion estimators, one per role** (as the image world's judge and annotator are
  different models): the evaluation `MotionJudge` uses phase correlation between consecutive
  frames; the simulated annotator uses the circular centroid's step. Both report the share
  of frame steps that move the prompted way.

Pixel convention as in `seppo.embedded.digits`: arrays in [-1, 1], ink +1; PIL 'L' frames.

| name            | meaning                                                          |
|-----------------|------------------------------------------------------------------|
| `clip`, `video` | (F, 16, 16) array in [-1, 1], or a list of F PIL frames          |
| `ink`           | (x + 1) / 2, so background is 0 and ink is 1                     |
| `u`             | the prompted direction as (dy, dx): left (0, −1), down (1, 0)     |
| `d`             | estimated displacement between two consecutive frames, (dy, dx)  |
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from seppo.embedded.digits import IMAGE_SIZE, from_pil, real_digits, to_pil
from seppo.embedded.judge import (Annotator, DigitJudge, load_annotator, load_digit_judge, preference_label,
                                  prompt_digits)
from seppo.embedded.pairs import generate_sides
from seppo.errors import DataError

DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (dy, dx), y grows downwards
VIDEO_PROMPT = "a handwritten digit {d} moving {direction}"
NUM_FRAMES = 8
MOTION_WEIGHT = 0.5  # the annotator's weight on motion, beside the image annotator's utility (≤ 1.2)
GIF_FRAME_MS = 120


# ---------------------------------------------------------------- clips and prompts


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


def moving_clip(digit_image: np.ndarray, direction: str, num_frames: int = NUM_FRAMES, speed: int = 1) -> np.ndarray:
    """(16, 16) digit → (F, 16, 16) clip sliding `speed` px/frame on a torus, centred in time:
    frame f is shifted by (f − (F−1)//2)·speed·u, so the middle frame is the digit as given."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    dy, dx = DIRECTIONS[direction]
    image = np.asarray(digit_image, dtype=np.float32)
    offsets = (np.arange(num_frames) - (num_frames - 1) // 2) * speed
    return np.stack([np.roll(image, (dy * k, dx * k), axis=(0, 1)) for k in offsets])  # (F, 16, 16)


def real_clips(split: str = "all", *, num_frames: int = NUM_FRAMES, speed: int = 1
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


# ---------------------------------------------------------------- motion estimates


def _ink(clips: np.ndarray) -> np.ndarray:
    return (np.clip(clips, -1, 1) + 1.0) / 2.0


def _wrap(shift: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Shifts on a torus into [−size/2, size/2)."""
    return (shift + size / 2) % size - size / 2


def circular_centroid(images: np.ndarray) -> np.ndarray:
    """Centroid of ink on the torus, (..., 16, 16) → (..., 2) as (y, x) in [0, 16).

    The angle of Σ ink·exp(2πi·pos/16) along each axis: exact under wrap-around shifts.
    """
    ink = _ink(images)
    phase = np.exp(2j * np.pi * np.arange(IMAGE_SIZE) / IMAGE_SIZE)
    rows = (ink.sum(axis=-1) * phase).sum(axis=-1)  # (...,) complex: mass along y
    cols = (ink.sum(axis=-2) * phase).sum(axis=-1)  # (...,) complex: mass along x
    angle = np.stack([np.angle(rows), np.angle(cols)], axis=-1)  # (..., 2)
    return (angle / (2 * np.pi) * IMAGE_SIZE) % IMAGE_SIZE


def _phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The torus shift taking frame a to frame b by phase correlation, (..., 16, 16) × 2 → (..., 2).

    R = A* · B / |A* · B|; the peak of IFFT(R) is the shift. Blank frames give (0, 0).
    """
    ink_a, ink_b = _ink(a), _ink(b)
    spec_a = np.fft.fft2(ink_a - ink_a.mean(axis=(-2, -1), keepdims=True))  # the DC term carries no position
    spec_b = np.fft.fft2(ink_b - ink_b.mean(axis=(-2, -1), keepdims=True))
    cross = np.conj(spec_a) * spec_b
    surface = np.fft.ifft2(cross / (np.abs(cross) + 1e-8)).real  # (..., 16, 16)
    flat_surface = surface.reshape(*surface.shape[:-2], -1)
    peak = flat_surface.argmax(axis=-1)
    shift = np.stack(np.unravel_index(peak, (IMAGE_SIZE, IMAGE_SIZE)), axis=-1).astype(np.float64)  # (..., 2)
    blank = np.abs(flat_surface).max(axis=-1) < 1e-6
    return np.where(blank[..., None], 0.0, _wrap(shift))


def align_to_middle(clips: np.ndarray) -> np.ndarray:
    """Roll every frame onto the clip's middle frame (frame (F−1)//2) by phase correlation,
    (N, F, 16, 16) → same shape. A real clip becomes its digit F times; the per-frame judges
    then score which digit each frame shows, not where on the torus it sits."""
    clips = np.asarray(clips, dtype=np.float32)
    middle = clips[:, (clips.shape[1] - 1) // 2][:, None]  # (N, 1, 16, 16)
    shift = np.rint(_phase_shift(clips, np.broadcast_to(middle, clips.shape))).astype(int)  # (N, F, 2)
    out = np.empty_like(clips)
    for n in range(clips.shape[0]):
        for f in range(clips.shape[1]):
            out[n, f] = np.roll(clips[n, f], tuple(shift[n, f]), axis=(0, 1))
    return out


def phase_correlation_steps(clips: np.ndarray) -> np.ndarray:
    """Displacement between consecutive frames by phase correlation: (N, F, 16, 16) → (N, F−1, 2)."""
    clips = np.asarray(clips, dtype=np.float32)
    return _phase_shift(clips[:, :-1], clips[:, 1:])


def centroid_steps(clips: np.ndarray) -> np.ndarray:
    """Displacement between consecutive frames from the circular centroid: (N, F, 16, 16) → (N, F−1, 2)."""
    c = circular_centroid(np.asarray(clips))  # (N, F, 2)
    return _wrap(np.diff(c, axis=1))


def direction_match(steps: np.ndarray, directions: Sequence[str], *, min_step: float = 0.5) -> np.ndarray:
    """Share of frame steps that move the prompted way, (N, F−1, 2) → (N,) in [0, 1].

    A step matches when it is at least `min_step` px along u and longer along u than across
    it; a still step matches no direction.
    """
    u = np.array([DIRECTIONS[d] for d in directions], dtype=np.float64)  # (N, 2)
    along = (steps * u[:, None, :]).sum(-1)  # (N, F−1)
    across = np.abs(steps[..., 0] * u[:, None, 1] - steps[..., 1] * u[:, None, 0])  # (N, F−1)
    return ((along >= min_step) & (along > across)).mean(axis=1)


def _prompt_directions(prompts: Sequence[str]) -> list[str]:
    directions = [parse_direction(p) for p in prompts]
    for p, d in zip(prompts, directions):
        if d is None:
            raise DataError(f"the motion judge needs a prompt naming a direction (left/right/up/down), got {p!r}")
    return directions


def _check(videos: Sequence, prompts: Sequence[str]) -> None:
    if len(videos) != len(prompts):
        raise ValueError(f"{len(videos)} videos but {len(prompts)} prompts")


# ---------------------------------------------------------------- judges (the Judge protocol, for videos)


class MotionJudge:
    """Evaluation: share of consecutive-frame steps whose phase-correlation shift points the
    prompted way. A clip sliding left at 1 px/frame scores 1 for "moving left", 0 for "right"."""

    name = "motion"
    scale = "share of frame steps moving the prompted way"

    def score_arrays(self, clips: np.ndarray, directions: Sequence[str]) -> np.ndarray:
        if len(clips) == 0:
            return np.zeros(0)
        return direction_match(phase_correlation_steps(clips), directions)

    def score(self, videos: Sequence, prompts: Sequence[str]) -> np.ndarray:
        _check(videos, prompts)
        return self.score_arrays(clip_arrays(videos), _prompt_directions(prompts))


class FrameDigitJudge:
    """Evaluation: the image `DigitJudge` on every frame (aligned to the middle frame), averaged over frames."""

    name = "digit"
    scale = "probability of the prompted class, mean over frames"

    def __init__(self, judge: DigitJudge | None = None):
        self.judge = judge or load_digit_judge()

    def score_arrays(self, clips: np.ndarray, digits: np.ndarray) -> np.ndarray:
        if len(clips) == 0:
            return np.zeros(0)
        n, f = clips.shape[:2]
        frames = align_to_middle(clips).reshape(n * f, IMAGE_SIZE, IMAGE_SIZE)  # (N·F, 16, 16)
        return self.judge.score_arrays(frames, np.repeat(np.asarray(digits), f)).reshape(n, f).mean(axis=1)

    def score(self, videos: Sequence, prompts: Sequence[str]) -> np.ndarray:
        _check(videos, prompts)
        return self.score_arrays(clip_arrays(videos), prompt_digits(prompts))


def temporal_consistency(videos: Sequence) -> np.ndarray:
    """Mean cosine similarity of consecutive frames, one value per video, (N,) in [0, 1].

    Features are ink pixels ((x+1)/2, background 0), the stand-in for CLIP image features
    when no CLIP is present; a frame with no ink has similarity 0 to anything.
    """
    clips = clip_arrays(videos)
    if len(clips) == 0:
        return np.zeros(0)
    ink = _ink(clips).reshape(*clips.shape[:2], -1).astype(np.float64)  # (N, F, 256)
    norm = np.linalg.norm(ink, axis=-1)  # (N, F)
    dot = (ink[:, :-1] * ink[:, 1:]).sum(-1)  # (N, F−1)
    cosine = dot / np.maximum(norm[:, :-1] * norm[:, 1:], 1e-8)
    return cosine.mean(axis=1)


class TemporalConsistency:
    """`temporal_consistency` behind the Judge protocol (prompts are not used)."""

    name = "consistency"
    scale = "mean cosine of consecutive frames (ink pixels)"

    def score(self, videos: Sequence, prompts: Sequence[str]) -> np.ndarray:
        _check(videos, prompts)
        return temporal_consistency(videos)


# ---------------------------------------------------------------- simulated annotator


class VideoAnnotator:
    """Simulated user for clips prompted with digit d and direction u. Its taste:

        u(v, d, u) = mean_f u_img(aligned v_f, d) + MOTION_WEIGHT · match_centroid(v, u)

    u_img is the image `Annotator`'s utility (right class, typical stroke), so the right class
    must hold in every frame; match_centroid is the share of frame steps whose circular
    centroid moves the prompted way (a different estimator from `MotionJudge`'s).
    """

    def __init__(self, annotator: Annotator, motion_weight: float = MOTION_WEIGHT):
        self.annotator, self.motion_weight = annotator, motion_weight

    def utility(self, clips: np.ndarray, digits: np.ndarray, directions: Sequence[str]) -> np.ndarray:
        clips = np.asarray(clips, dtype=np.float32)
        n, f = clips.shape[:2]
        frames = align_to_middle(clips).reshape(n * f, IMAGE_SIZE, IMAGE_SIZE)  # (N·F, 16, 16)
        per_frame = self.annotator.utility(frames, np.repeat(np.asarray(digits), f)).reshape(n, f)
        return per_frame.mean(axis=1) + self.motion_weight * direction_match(centroid_steps(clips), directions)

    def prefer(self, clip_a, clip_b, prompt: str, *, tie_margin: float = 0.02) -> float:
        """1.0 if `clip_a` is preferred for `prompt`, 0.0 if `clip_b`, 0.5 within `tie_margin`."""
        clips = clip_arrays([clip_a, clip_b])
        u = self.utility(clips, np.repeat(prompt_digits([prompt]), 2), _prompt_directions([prompt]) * 2)
        return float(preference_label(u[:1], u[1:], tie_margin)[0])


def load_video_annotator() -> VideoAnnotator:
    return VideoAnnotator(load_annotator())


# ---------------------------------------------------------------- preference pairs

# generator(prompts, seed) -> one clip (list of F PIL frames) per prompt, independent draws.
VideoGenerator = Callable[[list[str], int], list[list[Image.Image]]]

SCHEMA = pa.schema([
    ("caption", pa.string()),
    ("jpg_0", pa.binary()), ("jpg_1", pa.binary()),
    ("label_0", pa.float64()), ("label_1", pa.float64()),
    ("model_0", pa.string()), ("model_1", pa.string()),
])


def build_moving_digits_pairs(generators: dict[str, VideoGenerator], *, prompts_per_cell: int, seed: int,
                              out_dir: Path, annotator: VideoAnnotator | None = None,
                              judges: tuple | None = None, num_frames: int = NUM_FRAMES, digits: Sequence[int] = range(10),
                              chunk_size: int = 64, tie_margin: float = 0.02) -> dict:
    """Generate, label and write Moving-Digits pairs; return summary statistics.

    Prompts: `digits` (default 0..9) × 4 directions × `prompts_per_cell`; each gets two clips from two
    generators drawn at random (as in Pick-a-Pic). Writes into `out_dir`:
    - `train.parquet`: the Pick-a-Pic schema, `jpg_0`/`jpg_1` holding animated GIF bytes
      (exactly `num_frames` frames each, lossless grey); ties kept, as in Pick-a-Pic;
    - `winners/`: an imagefolder of the non-tie winners (`<i>.gif` + `metadata.jsonl` with
      `file_name`, `text`), which `imagefolder_source(..., num_frames=F)` reads today.
    Statistics: pairs, ties, win rates, and the evaluation judges' means (digit, motion) of
    the winners and of the "base" generator's clips, with their gaps.
    """
    if not generators:
        raise ValueError("build_moving_digits_pairs needs at least one generator")
    annotator = annotator or load_video_annotator()
    digit_judge, motion_judge = judges or (FrameDigitJudge(), MotionJudge())
    names = sorted(generators)
    rng = np.random.default_rng(seed)
    cells = [(int(d), direction) for d in digits for direction in DIRECTIONS]
    digits = np.array([d for d, _ in cells for _ in range(prompts_per_cell)])  # (P,)
    directions = [direction for _, direction in cells for _ in range(prompts_per_cell)]
    prompts = [video_prompt(d, direction) for d, direction in zip(digits, directions)]
    sides = rng.integers(len(names), size=(len(prompts), 2))  # (P, 2) generator of each side

    clips = generate_sides(generators, names, prompts, sides, seed, chunk_size, to_array=clip_arrays,
                           shape=(num_frames, IMAGE_SIZE, IMAGE_SIZE))  # (P, 2, F, 16, 16)

    flat = clips.reshape(-1, num_frames, IMAGE_SIZE, IMAGE_SIZE)  # (2P, F, 16, 16): side 0, side 1, ...
    utility = annotator.utility(flat, np.repeat(digits, 2), [d for d in directions for _ in range(2)]).reshape(-1, 2)
    label_0 = preference_label(utility[:, 0], utility[:, 1], tie_margin)  # (P,)

    out_dir = Path(out_dir)
    winners_dir = out_dir / "winners"
    winners_dir.mkdir(parents=True, exist_ok=True)
    gifs = [[gif_bytes(to_frames(clips[i, s])) for s in (0, 1)] for i in range(len(prompts))]
    table = pa.table({
        "caption": prompts, "jpg_0": [g[0] for g in gifs], "jpg_1": [g[1] for g in gifs],
        "label_0": label_0, "label_1": 1.0 - label_0,
        "model_0": [names[g] for g in sides[:, 0]], "model_1": [names[g] for g in sides[:, 1]],
    }, schema=SCHEMA)
    tmp = out_dir / f"train.parquet.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, out_dir / "train.parquet")
    decided = np.flatnonzero(label_0 != 0.5)
    rows = []
    for i in decided:
        side = 0 if label_0[i] == 1.0 else 1
        (winners_dir / f"{i:05d}.gif").write_bytes(gifs[i][side])
        rows.append(json.dumps({"file_name": f"{i:05d}.gif", "text": prompts[i]}))
    (winners_dir / "metadata.jsonl").write_text("".join(r + "\n" for r in rows))

    winner_clips = clips[decided, np.where(label_0[decided] == 1.0, 0, 1)]  # (W, F, 16, 16)
    stats = {"pairs": len(prompts), "ties": int(len(prompts) - len(decided)),
             "tie_share": float(1 - len(decided) / len(prompts)),
             "images_per_generator": {n: int((sides == g).sum()) for g, n in enumerate(names)},
             "win_rate": _win_rates(names, sides, label_0)}
    is_base = sides == names.index("base") if "base" in generators else np.zeros_like(sides, dtype=bool)  # (P, 2)
    base_idx = np.broadcast_to(np.arange(len(prompts))[:, None], sides.shape)[is_base]
    scorers = {"digit": lambda c, idx: digit_judge.score_arrays(c, digits[idx]),
               "motion": lambda c, idx: motion_judge.score_arrays(c, [directions[i] for i in idx])}
    for name, score in scorers.items():
        winner = float(score(winner_clips, decided).mean()) if len(decided) else None
        base = float(score(clips[is_base], base_idx).mean()) if len(base_idx) else None
        stats[f"winner_{name}"], stats[f"base_{name}"] = winner, base
        stats[f"winner_minus_base_{name}"] = None if winner is None or base is None else winner - base
    return stats


def _win_rates(names: list[str], sides: np.ndarray, label_0: np.ndarray) -> dict[str, float | None]:
    """Each generator's mean score (win 1, tie ½, loss 0) against other generators."""
    score = np.stack([label_0, 1.0 - label_0], axis=1)  # (P, 2)
    mixed = sides[:, 0] != sides[:, 1]
    return {name: (float(score[(sides == g) & mixed[:, None]].mean()) if ((sides == g) & mixed[:, None]).any() else None)
            for g, name in enumerate(names)}
