"""Shared fixtures: a private $SEPPO_CACHE for the whole session, and a tiny embedded world.

The embedded world (base model, "strong" model, Pick-a-Digit pairs) is built once per test
session with small budgets (`TINY`), so every end-to-end test after the first reuses it.
"""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

# Overrides that make a training run take seconds on 2 cores.
TINY = [
    "pretrain.steps=30", "pretrain.strong_extra_steps=30", "pretrain.pairs_per_digit=6",
    "pretrain.generator_steps=4",
    "train.iterations=2", "train.updates_per_iteration=2", "train.batch_size=4",
    "sampler.steps=2", "log.progress=false", "log.tensorboard=false", "checkpoints.every=0",
]


@pytest.fixture(scope="session", autouse=True)
def seppo_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("seppo-cache")
    old = os.environ.get("SEPPO_CACHE")
    os.environ["SEPPO_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SEPPO_CACHE", None)
    else:
        os.environ["SEPPO_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_config():
    """Build a tiny embedded-default config: `tiny_config(tmp_path, "method=sft", ...)`."""
    from seppo.config import load_config

    def make(run_dir, *overrides):
        return load_config("configs/digits-seppo.yaml" if Path("configs/digits-seppo.yaml").exists()
                           else Path(__file__).parents[1] / "configs/digits-seppo.yaml",
                           [*TINY, f"output_dir={run_dir}", *overrides])

    return make
