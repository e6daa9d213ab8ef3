"""A run's training set: its winner source opened from `cfg.data`, encoded once into the cache.

    open_dataset(cfg, backbone)
      → the source `cfg.data.source` names (seppo.data.sources.SOURCES), under the bad-record policy
      → the first `data.limit` usable examples
      → the latent + text-embedding cache, keyed by everything that changes the encodings

The cache is handed the backbone's encode functions rather than importing it (DESIGN.md §2).
"""

from __future__ import annotations

import itertools
import os

from seppo import paths
from seppo.config import Config
from seppo.data.cache import CachedDataset, build_cache
from seppo.data.records import DataSummary
from seppo.data.sources import open_examples
from seppo.data.transforms import ImageTransform
from seppo.errors import SeppoError


def open_dataset(cfg: Config, backbone, *, progress: bool = True) -> tuple[CachedDataset, DataSummary]:
    """Encode winners (and losers when the method needs pairs) and prompts once; reuse after.
    `backbone` gives `encode_images`, `encode_prompts`, `pixel_channels`, `source`, `is_video`."""
    examples, data_path = open_examples(cfg)
    transform = ImageTransform(cfg.data.resolution, crop=cfg.data.crop, hflip=cfg.data.hflip,
                               channels=backbone.pixel_channels)
    stream = _Limited(examples, cfg.data.limit) if cfg.data.limit else examples
    dataset = build_cache(stream, cache_root=paths.latents(), key=cache_key(cfg, backbone, transform, data_path),
                          transform=transform, encode_images=backbone.encode_images,
                          encode_prompts=backbone.encode_prompts, with_losers=cfg.needs_pairs,
                          both_flips=cfg.data.hflip, seed=cfg.seed, progress=progress)
    if len(dataset) == 0:
        raise SeppoError(f"no usable training examples in {data_path}")
    # A reused cache was not read again: its summary is the one stored when it was built.
    summary = DataSummary(**dataset.summary) if dataset.summary else examples.summary
    return dataset, summary


def cache_key(cfg: Config, backbone, transform: ImageTransform, data_path: str) -> dict:
    """Everything that changes the cached encodings: model, data, bad-record policy, transform,
    pairs, limit, and the clip sampling of a video model."""
    d = cfg.data
    return {"model": os.path.abspath(backbone.source), "single_file": cfg.model.single_file, "data": data_path,
            "source": d.source, "bad_records": [d.on_bad_record, d.max_bad_fraction, d.min_size],
            "transform": transform.settings(), "pairs": cfg.needs_pairs, "limit": d.limit,
            "frames": [d.num_frames, d.frame_stride] if backbone.is_video else None}


class _Limited:
    """The first `limit` examples of a guarded source; its data summary read after the pass."""

    def __init__(self, examples, limit: int):
        self.examples, self.limit = examples, limit

    def __iter__(self):
        return itertools.islice(iter(self.examples), self.limit)

    @property
    def summary(self):
        return self.examples.summary
