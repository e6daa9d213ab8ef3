"""Where seppo keeps what it builds once and reuses: every cache path, in one place.

Everything lives under `$SEPPO_CACHE` (default `~/.cache/seppo`), read at call time so tests
can point it elsewhere:

| path                          | what                                                     | written by |
|-------------------------------|----------------------------------------------------------|------------|
| `latents/<key>/`              | encoded winners and prompts of a training set             | seppo.data.cache |
| `embedded/`                   | the fitted digit judge and simulated annotator            | seppo.embedded.judge |
| `embedded-<key>/base`, `/strong` | the embedded base model and its stronger sibling      | seppo.embedded.pretrain |
| `pick-a-digit-<key>/`         | Pick-a-Digit pairs (`train.parquet`, `stats.json`)        | seppo.embedded.world |
| `video-<key>/`, `moving-digits-<key>/` | the video world's models and pairs              | seppo.embedded.video_world |

A `<key>` is a short hash of everything that changes the contents. `embedded:digits`, the
default `model.path`, names the embedded base; `model_folder` resolves it once built.
This module imports nothing of ours: configs are read by attribute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from seppo.errors import ModelError

EMBEDDED_MODEL = "embedded:digits"  # model.path of the embedded base
# Bump when the embedded base's pretraining changes in code (seppo.embedded.pretrain); a change
# of its config changes the key by itself.
BASE_VERSION = "1"


def cache_root() -> Path:
    return Path(os.environ.get("SEPPO_CACHE") or Path.home() / ".cache" / "seppo")


def short_hash(key) -> str:
    """12 hex digits of the key's JSON (sorted dict keys, so their order does not matter)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def keyed(name: str, key) -> Path:
    """`$SEPPO_CACHE/<name>-<hash of key>`."""
    return cache_root() / f"{name}-{short_hash(key)}"


def latents() -> Path:
    return cache_root() / "latents"


def judges() -> Path:
    return cache_root() / "embedded"


def embedded_key(pretrain, seed: int = 0) -> str:
    """The embedded base's key: its pretraining config (`cfg.pretrain`) and seed."""
    return short_hash({"v": BASE_VERSION, "cfg": dataclasses.asdict(pretrain), "seed": seed})


def embedded_models(pretrain, seed: int = 0) -> Path:
    """The folder holding `base/` and `strong/`, the embedded base and its stronger sibling."""
    return cache_root() / f"embedded-{embedded_key(pretrain, seed)}"


def pick_a_digit(pretrain, seed: int = 0) -> Path:
    """The folder holding Pick-a-Digit's `train.parquet` and `stats.json`."""
    return keyed("pick-a-digit", [embedded_key(pretrain, seed), pretrain.pairs_per_digit, pretrain.generator_steps,
                                  pretrain.generator_guidance])


def model_folder(cfg) -> Path:
    """`cfg.model.path` as a folder: `embedded:digits` is the cached embedded base, which
    `seppo train` builds first (`seppo.embedded.world.ensure_world`)."""
    if cfg.model.path != EMBEDDED_MODEL:
        return Path(cfg.model.path)
    folder = embedded_models(cfg.pretrain) / "base"
    if not (folder / "pretrain.json").is_file():
        raise ModelError(f"{EMBEDDED_MODEL} is not built yet (expected {folder}): `seppo train` builds it, "
                         "or call seppo.embedded.world.ensure_world(cfg) first")
    return folder
