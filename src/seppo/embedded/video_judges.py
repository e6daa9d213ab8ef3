"""The moving-digits judges and simulated annotator (the Judge protocol, for videos).

Two motion estimators, one per role, as the image world's judge and annotator are different
models: the evaluation `MotionJudge` uses phase correlation between consecutive frames; the
simulated `VideoAnnotator` uses the circular centroid's step. Both report the share of frame
steps that move the prompted way. Clips live on a torus (seppo.embedded.clips), so both
estimates are exact under wrap-around, and the per-frame digit judge rolls every frame onto
the first one, which holds a real clip's digit as given (`align_to_first`).

| name     | meaning                                                          |
|----------|------------------------------------------------------------------|
| `ink`    | (x + 1) / 2, so background is 0 and ink is 1                     |
| `u`      | the prompted direction as (dy, dx): left (0, −1), down (1, 0)     |
| `d`      | estimated displacement between two consecutive frames, (dy, dx)  |
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from seppo.embedded.clips import DIRECTIONS, clip_arrays, parse_direction
from seppo.embedded.digits import IMAGE_SIZE
from seppo.embedded.judge import Annotator, DigitJudge, load_annotator, load_digit_judge, preference_label, prompt_digits
from seppo.errors import DataError

MOTION_WEIGHT = 0.5  # the annotator's weight on motion, beside the image annotator's utility (≤ 1.2)


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


def align_to_first(clips: np.ndarray) -> np.ndarray:
    """Roll every frame onto the clip's first frame by phase correlation, (N, F, 16, 16) → same
    shape. A real clip (`moving_clip`) becomes its digit as given F times; the per-frame judges
    then score which digit each frame shows, not where on the torus it sits."""
    clips = np.asarray(clips, dtype=np.float32)
    first = clips[:, :1]  # (N, 1, 16, 16)
    shift = np.rint(_phase_shift(clips, np.broadcast_to(first, clips.shape))).astype(int)  # (N, F, 2)
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
    """Evaluation: the image `DigitJudge` on every frame (aligned to the first frame), averaged over frames."""

    name = "digit"
    scale = "probability of the prompted class, mean over frames"

    def __init__(self, judge: DigitJudge | None = None):
        self.judge = judge or load_digit_judge()

    def score_arrays(self, clips: np.ndarray, digits: np.ndarray) -> np.ndarray:
        if len(clips) == 0:
            return np.zeros(0)
        n, f = clips.shape[:2]
        frames = align_to_first(clips).reshape(n * f, IMAGE_SIZE, IMAGE_SIZE)  # (N·F, 16, 16)
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
        frames = align_to_first(clips).reshape(n * f, IMAGE_SIZE, IMAGE_SIZE)  # (N·F, 16, 16)
        per_frame = self.annotator.utility(frames, np.repeat(np.asarray(digits), f)).reshape(n, f)
        return per_frame.mean(axis=1) + self.motion_weight * direction_match(centroid_steps(clips), directions)

    def prefer(self, clip_a, clip_b, prompt: str, *, tie_margin: float = 0.02) -> float:
        """1.0 if `clip_a` is preferred for `prompt`, 0.0 if `clip_b`, 0.5 within `tie_margin`."""
        clips = clip_arrays([clip_a, clip_b])
        u = self.utility(clips, np.repeat(prompt_digits([prompt]), 2), _prompt_directions([prompt]) * 2)
        return float(preference_label(u[:1], u[1:], tie_margin)[0])


def load_video_annotator() -> VideoAnnotator:
    return VideoAnnotator(load_annotator())


class VideoOracleJudge:
    """The video annotator's own utility behind the Judge protocol: the simulation's oracle,
    which real data lacks (the video analogue of `seppo.embedded.oracle.OracleJudge`)."""

    name = "video-oracle"
    scale = ("simulation's oracle: the video annotator's own utility, which real data lacks "
             f"(mean over frames of the image annotator's utility + {MOTION_WEIGHT:g}·centroid motion match, 0 to 1.7)")

    def __init__(self, annotator: VideoAnnotator | None = None):
        self.annotator = annotator or load_video_annotator()

    def score(self, videos: Sequence, prompts: Sequence[str]) -> np.ndarray:
        _check(videos, prompts)
        if len(videos) == 0:
            return np.zeros(0)
        return self.annotator.utility(clip_arrays(videos), prompt_digits(prompts), _prompt_directions(prompts))


class PromptMatchJudge:
    """What a video prompt asks, from the public evaluation judges only: ½·(per-frame digit
    judge) + ½·(motion judge), each in [0, 1]. Equal weights because the prompt names the digit
    and the direction once each; neither the annotator's weights nor its estimators enter, so
    a benchmark may select settings by it and still report the oracle honestly."""

    name = "video-prompt"
    scale = "½ P(prompted digit), mean over frames + ½ share of frame steps moving the prompted way, 0 to 1"

    def __init__(self, digit: FrameDigitJudge | None = None, motion: MotionJudge | None = None):
        self.digit, self.motion = digit or FrameDigitJudge(), motion or MotionJudge()

    def score(self, videos: Sequence, prompts: Sequence[str]) -> np.ndarray:
        return 0.5 * self.digit.score(videos, prompts) + 0.5 * self.motion.score(videos, prompts)
