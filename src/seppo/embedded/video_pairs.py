"""Build Moving-Digits: preference pairs of clips in the Pick-a-Pic schema (seppo.embedded.pairs).

Each prompt "a handwritten digit d moving u" gets two clips from two generators drawn at
random, labelled by the simulated `VideoAnnotator`. `jpg_0`/`jpg_1` hold animated GIF bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from seppo.embedded.clips import DIRECTIONS, NUM_FRAMES, clip_arrays, gif_bytes, to_frames, video_prompt
from seppo.embedded.digits import IMAGE_SIZE
from seppo.embedded.judge import preference_label
from seppo.embedded.pairs import generate_sides, win_rates, write_pairs
from seppo.embedded.video_judges import FrameDigitJudge, MotionJudge, VideoAnnotator, load_video_annotator

# generator(prompts, seed) -> one clip (list of F PIL frames) per prompt, independent draws.
VideoGenerator = Callable[[list[str], int], list[list[Image.Image]]]


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
    write_pairs(out_dir / "train.parquet", prompts, [g[0] for g in gifs], [g[1] for g in gifs], label_0, names, sides)
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
             "win_rate": win_rates(names, sides, label_0)}
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
