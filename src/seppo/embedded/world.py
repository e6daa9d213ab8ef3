"""The embedded default, assembled: base model, stronger generator and Pick-a-Digit pairs.

`ensure_pick_a_digit(cfg)` returns the cached parquet of preference pairs (Pick-a-Pic
schema), building what is missing: the base and the "strong" model (the same architecture
trained longer, as Pick-a-Pic's generators are mostly stronger than SD-1.5), then two
images per prompt from the generators, labelled by the simulated annotator. The statistics
(win rates, by how much winners beat the base's own samples) are saved beside the parquet.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from seppo.config import PretrainConfig
from seppo.pretrain import cache_root, embedded_key, ensure_embedded_base


def _generator(folder: Path, cfg: PretrainConfig):
    from seppo.embedded.pairs import noise_keys
    from seppo.models import load_for_sampling, sample

    backbone = load_for_sampling(str(folder))

    def generate(prompts: list[str], seed: int) -> list:
        seeds = noise_keys(seed, len(prompts))
        return sample(backbone, prompts, seeds=seeds, resolution=cfg.unet.sample_size,
                      steps=cfg.generator_steps, guidance=cfg.generator_guidance)

    return generate


# Each pair set draws its sides and noise from its own build seed, so no image noise is shared
# between the training pairs, the held-out pairs and the learned judge's pairs.
SPLITS = {"train": 0, "heldout": 1, "judge": 2}


def split_seed(split: str, seed: int = 0) -> int:
    """The build seed of a pair set: the world seed for "train", a disjoint one for the others."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return seed if split == "train" else SPLITS[split] * 1_000_003 + seed


def pairs_key(cfg: PretrainConfig, seed: int, split: str, pairs_per_digit: int) -> str:
    blob = json.dumps([embedded_key(cfg, seed), split, pairs_per_digit, cfg.generator_steps, cfg.generator_guidance])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_pick_a_digit(cfg: PretrainConfig, *, seed: int = 0, progress: bool = True, split: str = "train",
                        pairs_per_digit: int | None = None) -> tuple[Path, dict]:
    """The cached Pick-a-Digit parquet and its statistics, built on first use.

    `split` "train" is the training data (`cfg.pairs_per_digit` prompts per digit); "heldout"
    and "judge" are pair sets from the same generators with noise the training set never uses
    (diagnostics; the learned preference judge), `pairs_per_digit` prompts per digit."""
    from seppo.embedded.judge import load_annotator
    from seppo.embedded.pairs import build_pick_a_digit

    n = cfg.pairs_per_digit if pairs_per_digit is None else pairs_per_digit
    folders = ensure_embedded_base(cfg, seed=seed, progress=progress)
    name = "pick-a-digit" if split == "train" else f"pick-a-digit-{split}"
    root = cache_root() / f"{name}-{pairs_key(cfg, seed, split, n)}"
    parquet, stats_file = root / "train.parquet", root / "stats.json"
    if parquet.exists() and stats_file.exists():
        return parquet, json.loads(stats_file.read_text())
    print(f"building Pick-a-Digit {split} pairs ({n * 10} pairs from generators base and strong) into {root}")
    with torch.no_grad():
        generators = {g: _generator(folder, cfg) for g, folder in folders.items()}
        stats = build_pick_a_digit(generators, prompts_per_digit=n, seed=split_seed(split, seed),
                                   annotator=load_annotator(), out_path=parquet)
    stats["split"] = split
    stats_file.write_text(json.dumps(stats, indent=1))
    return parquet, stats
