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
    from seppo.models import load_for_sampling, sample

    backbone = load_for_sampling(str(folder))

    def generate(prompts: list[str], seed: int) -> list:
        seeds = [seed * 100_003 + i for i in range(len(prompts))]
        return sample(backbone, prompts, seeds=seeds, resolution=cfg.unet.sample_size,
                      steps=cfg.generator_steps, guidance=cfg.generator_guidance)

    return generate


def ensure_pick_a_digit(cfg: PretrainConfig, *, seed: int = 0, progress: bool = True) -> tuple[Path, dict]:
    """The cached Pick-a-Digit parquet and its statistics, built on first use."""
    from seppo.embedded.judge import load_annotator
    from seppo.embedded.pairs import build_pick_a_digit

    folders = ensure_embedded_base(cfg, seed=seed, progress=progress)
    blob = json.dumps([embedded_key(cfg, seed), cfg.pairs_per_digit, cfg.generator_steps, cfg.generator_guidance])
    root = cache_root() / f"pick-a-digit-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
    parquet, stats_file = root / "train.parquet", root / "stats.json"
    if parquet.exists() and stats_file.exists():
        return parquet, json.loads(stats_file.read_text())
    print(f"building Pick-a-Digit ({cfg.pairs_per_digit * 10} pairs from generators base and strong) into {root}")
    with torch.no_grad():
        generators = {name: _generator(folder, cfg) for name, folder in folders.items()}
        stats = build_pick_a_digit(generators, prompts_per_digit=cfg.pairs_per_digit, seed=seed,
                                   annotator=load_annotator(), out_path=parquet)
    stats_file.write_text(json.dumps(stats, indent=1))
    return parquet, stats
