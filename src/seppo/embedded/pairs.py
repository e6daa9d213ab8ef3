"""Build Pick-a-Digit: preference pairs in the Pick-a-Pic schema, labelled by the annotator.

As in Pick-a-Pic, each prompt gets two images from two generators drawn at random (possibly
the same generator twice, with different noise), and a user, here the simulated
`Annotator`, picks one or calls a tie. The parquet has Pick-a-Pic's columns:

| column             | type    | meaning                                            |
|--------------------|---------|----------------------------------------------------|
| caption            | string  | the prompt, "a handwritten digit 3"                |
| jpg_0, jpg_1       | binary  | PNG bytes of a 16x16 'L' image (the name is Pick-a-Pic's) |
| label_0, label_1   | float64 | 1.0 / 0.0 / 0.5 (tie); label_1 = 1 - label_0       |
| model_0, model_1   | string  | generator names                                    |
| noise_0, noise_1   | int64   | the noise key each image was generated from (seppo.models.sample) |
| utility_0, utility_1 | float64 | the annotator's utility u(x, d) of each image (simulation only) |

Ties stay in the file; the loader drops them, as for the real Pick-a-Pic. Moving-Digits
(seppo.embedded.video_pairs) writes its clips through the same `write_pairs`, GIF bytes in
`jpg_0`/`jpg_1`. `sampling_generator` turns a model folder into a generator for either.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from seppo.embedded.digits import IMAGE_SIZE, digit_prompt, from_pil, to_pil
from seppo.embedded.judge import Annotator, DigitJudge, load_digit_judge, preference_label
from seppo.models import load_for_sampling, sample

# generator(prompts, seed) -> one image per prompt. Images at different positions of one
# call must be independent draws, so one call may serve both sides of a pair.
Generator = Callable[[list[str], int], list[Image.Image]]

SCHEMA = pa.schema([
    ("caption", pa.string()),
    ("jpg_0", pa.binary()), ("jpg_1", pa.binary()),
    ("label_0", pa.float64()), ("label_1", pa.float64()),
    ("model_0", pa.string()), ("model_1", pa.string()),
    ("noise_0", pa.int64()), ("noise_1", pa.int64()),
    ("utility_0", pa.float64()), ("utility_1", pa.float64()),
])
# A generator call with chunk seed c draws image i of the chunk from noise key c·NOISE_STRIDE + i,
# so two chunks never share a key unless their seeds are equal (chunks hold < NOISE_STRIDE).
NOISE_STRIDE = 100_003


def noise_keys(chunk_seed: int, n: int) -> list[int]:
    """The noise keys of a generator call with `chunk_seed` for `n` prompts."""
    return [chunk_seed * NOISE_STRIDE + i for i in range(n)]


def sampling_generator(folder: Path, *, resolution: int, steps: int, guidance: float, num_frames: int = 0,
                       batch_size: int = 64) -> Generator:
    """A model folder as a generator: guided DDIM samples (images, or clips of `num_frames`),
    sample i of a call with seed s keyed by `noise_keys(s, n)[i]`."""
    backbone = load_for_sampling(str(folder), num_frames=num_frames)

    def generate(prompts: list[str], seed: int) -> list:
        seeds = noise_keys(seed, len(prompts))
        return sample(backbone, prompts, seeds=seeds, resolution=resolution, steps=steps, guidance=guidance,
                      batch_size=batch_size)

    return generate


def write_pairs(out_path: Path, prompts: list[str], jpg_0: list[bytes], jpg_1: list[bytes], label_0: np.ndarray,
                names: list[str], sides: np.ndarray, *, keys: np.ndarray | None = None,
                utility: np.ndarray | None = None) -> None:
    """Write pairs as Pick-a-Pic parquet (`SCHEMA`), atomically: a reader never sees half a file.
    `sides` (P, 2) holds each side's index into the generator `names`; `keys` and `utility`
    (P, 2), each side's noise key and annotator utility, are null where not given."""
    none = [None] * len(prompts)
    table = pa.table({
        "caption": prompts, "jpg_0": jpg_0, "jpg_1": jpg_1, "label_0": label_0, "label_1": 1.0 - label_0,
        "model_0": [names[g] for g in sides[:, 0]], "model_1": [names[g] for g in sides[:, 1]],
        "noise_0": none if keys is None else keys[:, 0], "noise_1": none if keys is None else keys[:, 1],
        "utility_0": none if utility is None else utility[:, 0], "utility_1": none if utility is None else utility[:, 1],
    }, schema=SCHEMA)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f"{out_path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, out_path)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    to_pil(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk_seed(seed: int, name: str, chunk: int) -> int:
    # Keyed by the generator's name, not its position, so adding a generator leaves the
    # others' images unchanged.
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode()), chunk]).generate_state(1)[0])


def generate_sides(generators: dict[str, Callable], names: list[str], prompts: list[str], sides: np.ndarray,
                   seed: int, chunk_size: int, to_array: Callable[[list], np.ndarray], shape: tuple,
                   keys_out: np.ndarray | None = None) -> np.ndarray:
    """Outputs for every (prompt, side), one generator call per chunk: (P, 2, *shape).
    `to_array` turns a generator's outputs (images or clips) into an array (R, *shape).
    `keys_out` (P, 2) int64, if given, receives each output's noise key (`noise_keys`)."""
    out_arrays = np.zeros((len(prompts), 2, *shape), dtype=np.float32)
    for g, name in enumerate(names):
        requests = np.argwhere(sides == g)  # (R, 2) rows of (prompt index, side)
        for k, start in enumerate(range(0, len(requests), chunk_size)):
            chunk = requests[start:start + chunk_size]
            chunk_seed = _chunk_seed(seed, name, k)
            out = generators[name]([prompts[i] for i, _ in chunk], chunk_seed)
            if len(out) != len(chunk):
                raise ValueError(f"generator {name!r} returned {len(out)} outputs for {len(chunk)} prompts")
            out_arrays[chunk[:, 0], chunk[:, 1]] = to_array(out)
            if keys_out is not None:
                keys_out[chunk[:, 0], chunk[:, 1]] = noise_keys(chunk_seed, len(chunk))
    return out_arrays


def win_rates(names: list[str], sides: np.ndarray, label_0: np.ndarray) -> dict[str, float | None]:
    """Each generator's mean score (win 1, tie ½, loss 0) against *other* generators.

    Self-pairs are left out: they always score ½ and would pull every rate towards ½.
    """
    score = np.stack([label_0, 1.0 - label_0], axis=1)  # (P, 2): score of each side
    mixed = sides[:, 0] != sides[:, 1]
    rates = {}
    for g, name in enumerate(names):
        mine = (sides == g) & mixed[:, None]  # (P, 2)
        rates[name] = float(score[mine].mean()) if mine.any() else None
    return rates


def build_pick_a_digit(generators: dict[str, Generator], *, prompts_per_digit: int, seed: int,
                       annotator: Annotator, out_path: Path, judge: DigitJudge | None = None,
                       chunk_size: int = 64, tie_margin: float = 0.02) -> dict:
    """Generate, label and write Pick-a-Digit pairs; return summary statistics.

    Prompts are digits 0..9 × `prompts_per_digit`. The returned dict holds: pairs, ties,
    tie_share, images_per_generator, win_rate (per generator, against other generators),
    winner_reward (mean `judge` reward of the non-tie winners), base_reward (mean reward of
    all images of the generator named "base", None if absent), winner_minus_base, and the
    quality gap of the non-tie pairs in annotator utility (utility_gap_mean, utility_gap_median).
    """
    if not generators:
        raise ValueError("build_pick_a_digit needs at least one generator")
    judge = judge or load_digit_judge()
    names = sorted(generators)
    rng = np.random.default_rng(seed)

    digits = np.repeat(np.arange(10), prompts_per_digit)  # (P,)
    prompts = [digit_prompt(d) for d in digits]
    sides = rng.integers(len(names), size=(len(prompts), 2))  # (P, 2) generator of each side
    keys = np.zeros((len(prompts), 2), dtype=np.int64)  # (P, 2) noise key of each side
    images = generate_sides(generators, names, prompts, sides, seed, chunk_size,
                            to_array=lambda out: np.stack([from_pil(im) for im in out]),
                            shape=(IMAGE_SIZE, IMAGE_SIZE), keys_out=keys)  # (P, 2, 16, 16)

    flat = images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)  # (2P, 16, 16): side 0, side 1, side 0, ...
    utility = annotator.utility(flat, np.repeat(digits, 2)).reshape(-1, 2)  # (P, 2)
    label_0 = preference_label(utility[:, 0], utility[:, 1], tie_margin)  # (P,)

    write_pairs(out_path, prompts, [_png(x) for x in images[:, 0]], [_png(x) for x in images[:, 1]], label_0, names, sides,
                keys=keys, utility=utility)

    decided = label_0 != 0.5
    winners = images[decided, np.where(label_0[decided] == 1.0, 0, 1)]  # (W, 16, 16)
    winner_reward = float(judge.score_arrays(winners, digits[decided]).mean()) if decided.any() else None
    base_reward = None
    if "base" in generators:
        is_base = sides == names.index("base")  # (P, 2)
        base_digits = np.broadcast_to(digits[:, None], sides.shape)[is_base]
        base_reward = float(judge.score_arrays(images[is_base], base_digits).mean())
    gap = None if winner_reward is None or base_reward is None else winner_reward - base_reward
    # The quality gap the pairs encode, in the annotator's own utility (only a simulation has it).
    utility_gap = np.abs(utility[:, 0] - utility[:, 1])[decided]  # (W,)
    return {
        "pairs": len(prompts),
        "ties": int((~decided).sum()),
        "tie_share": float((~decided).mean()),
        "images_per_generator": {n: int((sides == g).sum()) for g, n in enumerate(names)},
        "win_rate": win_rates(names, sides, label_0),
        "winner_reward": winner_reward,
        "base_reward": base_reward,
        "winner_minus_base": gap,
        "utility_gap_mean": float(utility_gap.mean()) if decided.any() else None,
        "utility_gap_median": float(np.median(utility_gap)) if decided.any() else None,
    }
