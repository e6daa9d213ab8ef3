"""Shared fixtures: a private $SEPPO_CACHE for the whole session, and a tiny embedded world.

The embedded world (base model, "strong" model, Pick-a-Digit pairs) is built once per test
session with small budgets (`TINY`), so every end-to-end test after the first reuses it.
"""

import os
from pathlib import Path

import pytest
import torch

from seppo.config import load_config
from seppo.embedded.budget import QUICK
from seppo.embedded.world import ensure_world

torch.set_num_threads(2)

# Overrides that make a training run take seconds on 2 cores: the quick budget of the demos.
TINY = QUICK


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
    """Build a tiny embedded-default config, its world built (once, cached) as `seppo train`
    does before the loop: `tiny_config(tmp_path, "method=sft", ...)`."""

    def make(run_dir, *overrides):
        cfg = load_config(Path(__file__).parents[1] / "configs/digits-seppo.yaml",
                          [*TINY, f"output_dir={run_dir}", *overrides])
        ensure_world(cfg, progress=False)
        return cfg

    return make
