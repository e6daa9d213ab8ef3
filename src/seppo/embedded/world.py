"""The embedded default, assembled: base model, stronger generator and Pick-a-Digit pairs.

`ensure_pick_a_digit(cfg)` returns the cached parquet of preference pairs (Pick-a-Pic
schema), building what is missing: the base and the "strong" model (the same architecture
trained longer, as Pick-a-Pic's generators are mostly stronger than SD-1.5), then two
images per prompt from the generators, labelled by the simulated annotator. The statistics
(win rates, by how much winners beat the base's own samples) are saved beside the parquet.

`ensure_world(cfg)` builds whatever a run's config names from the embedded world
(`model.path: embedded:digits`, `data.source: embedded`); `seppo train` calls it before the
loop, which then finds both through seppo.paths like any other model and source.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seppo import paths
from seppo.config import Config, PretrainConfig
from seppo.embedded.judge import load_annotator
from seppo.embedded.pairs import build_pick_a_digit, sampling_generator
from seppo.embedded.pretrain import ensure_embedded_base

# Each pair set draws its sides and noise from its own build seed, so no image noise is shared
# between the training pairs, the held-out pairs and the learned judge's pairs.
SPLITS = {"train": 0, "heldout": 1, "judge": 2}


def split_seed(split: str, seed: int = 0) -> int:
    """The build seed of a pair set: the world seed for "train", a disjoint one for the others."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return seed if split == "train" else SPLITS[split] * 1_000_003 + seed


def ensure_pick_a_digit(cfg: PretrainConfig, *, seed: int = 0, progress: bool = True, split: str = "train",
                        pairs_per_digit: int | None = None) -> tuple[Path, dict]:
    """The cached Pick-a-Digit parquet and its statistics, built on first use.

    `split` "train" is the training data (`cfg.pairs_per_digit` prompts per digit); "heldout"
    and "judge" are pair sets from the same generators with noise the training set never uses
    (diagnostics; the learned preference judge), `pairs_per_digit` prompts per digit."""
    n = cfg.pairs_per_digit if pairs_per_digit is None else pairs_per_digit
    split_seed(split, seed)  # an unknown split fails before anything is built
    folders = ensure_embedded_base(cfg, seed=seed, progress=progress)
    root = paths.pick_a_digit(cfg, seed, split, n)
    parquet, stats_file = root / "train.parquet", root / "stats.json"
    if (parquet.exists() and stats_file.exists()) or paths.from_prebuilt(root):
        return parquet, json.loads(stats_file.read_text())
    print(f"building Pick-a-Digit {split} pairs ({n * 10} pairs from generators {' and '.join(cfg.pair_generators)}) into {root}")
    with torch.no_grad():
        generators = {name: sampling_generator(folder, resolution=cfg.unet.sample_size, steps=cfg.generator_steps,
                                               guidance=cfg.generator_guidance)
                      for name, folder in folders.items() if name in cfg.pair_generators}
        stats = build_pick_a_digit(generators, prompts_per_digit=n, seed=split_seed(split, seed),
                                   annotator=load_annotator(), out_path=parquet)
    stats["split"] = split
    stats_file.write_text(json.dumps(stats, indent=1))
    return parquet, stats


def ensure_world(cfg: Config, *, progress: bool = True) -> None:
    """Build (once, cached) what `cfg` names from the embedded world."""
    if cfg.model.path == paths.EMBEDDED_MODEL:
        ensure_embedded_base(cfg.pretrain, progress=progress)
    if cfg.data.source == "embedded":
        ensure_pick_a_digit(cfg.pretrain, progress=progress)
