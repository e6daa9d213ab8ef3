"""Shared fixtures: a private $SEPPO_CACHE for the whole session, and a tiny embedded world.

The embedded world (base model, "strong" model, Pick-a-Digit pairs) is built once per test
session with small budgets (`TINY`), so every end-to-end test after the first reuses it.
"""

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import torch

from seppo.config import load_config
from seppo.embedded.budget import QUICK
from seppo.embedded.world import ensure_world

torch.set_num_threads(2)

# Overrides that make a training run take seconds on 2 cores: the quick budget of the demos.
TINY = QUICK


SESSION_MARK = f"SEPPO_TEST_SESSION={uuid.uuid4().hex}"


def _started_here() -> list[int]:
    """Live processes (zombies aside) whose environment carries this session's mark: every
    subprocess the tests start inherits it, including torchrun's workers in their own sessions."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if SESSION_MARK.encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the run if a process a test started outlives the session (then kill it)."""
    key, value = SESSION_MARK.split("=")
    os.environ[key] = value
    yield
    deadline = time.monotonic() + 10
    while (left := _started_here()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"processes started by the tests were still alive at the end: {left}"


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
