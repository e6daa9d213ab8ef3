"""Where seppo keeps what it builds once and reuses: every cache path, in one place.

Everything lives under `$SEPPO_CACHE` (default `~/.cache/seppo`), read at call time so tests
can point it elsewhere:

| path                          | what                                                     | written by |
|-------------------------------|----------------------------------------------------------|------------|
| `latents/<key>/`              | encoded winners and prompts of a training set             | seppo.data.cache |
| `embedded/`                   | the fitted digit judge and simulated annotator            | seppo.embedded.judge |
| `embedded-<key>/base`, `/strong` | the embedded base model and its stronger sibling      | seppo.embedded.pretrain |
| `pick-a-digit[-split]-<key>/` | Pick-a-Digit pairs (`train.parquet`, `stats.json`): training, held-out, judge | seppo.embedded.world |
| `embedded/preference-<key>/`  | the learned preference judge (Bradley–Terry, on the judge pairs) | seppo.embedded.preference |
| `video-<key>/`, `moving-digits-<key>/` | the video world's models and pairs              | seppo.embedded.video_world |

The shipped embedded world (base, strong sibling, training pairs, learned judge) comes
prebuilt in the package (`seppo/embedded/prebuilt/`, laid out like this cache): `from_prebuilt`
copies an entry into the cache when its key matches, so a first `seppo demo` does not pretrain.
Any other world (another `pretrain.*`, another `BASE_VERSION`) has other keys and is built;
`SEPPO_PREBUILT=0` builds the shipped one too.

A `<key>` is a short hash of everything that changes the contents. `embedded:digits`, the
default `model.path`, names the embedded base; `model_folder` resolves it once built.
This module imports nothing of ours: configs are read by attribute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from importlib.resources import files
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


def prebuilt_root() -> Path:
    return Path(str(files("seppo") / "embedded" / "prebuilt"))


def from_prebuilt(path: Path) -> bool:
    """Copy the packaged prebuilt entry for cache path `path` (a folder or a file) into place;
    False when the package has none for it (another key) or `$SEPPO_PREBUILT` is 0."""
    if os.environ.get("SEPPO_PREBUILT", "1") == "0":
        return False
    source = prebuilt_root() / Path(path).relative_to(cache_root())
    if not source.exists():
        return False
    tmp = path.with_name(f"{path.name}.prebuilt-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, tmp, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, tmp)
    if source.is_dir() and path.exists():
        shutil.rmtree(path, ignore_errors=True)  # a half-built folder
    try:
        os.replace(tmp, path)  # whole, or not at all
    except OSError:  # another process put it in place first
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def latents() -> Path:
    return cache_root() / "latents"


def judges() -> Path:
    return cache_root() / "embedded"


# PretrainConfig fields that shape the pair sets, not the models: changing them keeps the cached models.
PAIR_FIELDS = ("pairs_per_digit", "generator_steps", "generator_guidance", "judge_pairs_per_digit", "pair_generators")


def embedded_key(pretrain, seed: int = 0) -> str:
    """The embedded base's key: its pretraining config (`cfg.pretrain`) but for `PAIR_FIELDS`, and seed."""
    fields = {k: v for k, v in dataclasses.asdict(pretrain).items() if k not in PAIR_FIELDS}
    return short_hash({"v": BASE_VERSION, "cfg": fields, "seed": seed})


def embedded_models(pretrain, seed: int = 0) -> Path:
    """The folder holding `base/` and `strong/`, the embedded base and its stronger sibling."""
    return cache_root() / f"embedded-{embedded_key(pretrain, seed)}"


def pick_a_digit(pretrain, seed: int = 0, split: str = "train", pairs_per_digit: int | None = None) -> Path:
    """The folder holding a Pick-a-Digit pair set's `train.parquet` and `stats.json`: the
    training pairs ("train"), or the held-out or judge pairs (seppo.embedded.world.SPLITS)."""
    n = pretrain.pairs_per_digit if pairs_per_digit is None else pairs_per_digit
    name = "pick-a-digit" if split == "train" else f"pick-a-digit-{split}"
    parts = [embedded_key(pretrain, seed), split, n, pretrain.generator_steps, pretrain.generator_guidance]
    default = next(f.default_factory() for f in dataclasses.fields(pretrain) if f.name == "pair_generators")
    if sorted(pretrain.pair_generators) != sorted(default):  # the default keeps the keys it had
        parts.append(sorted(pretrain.pair_generators))
    return keyed(name, parts)


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
