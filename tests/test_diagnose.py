"""Every benchmark arm is a valid config; `seppo diagnose-flipper` reports precision and recall
per iteration for 1 and for n draws."""

import json
from pathlib import Path

import pytest

from seppo.benchmark import ARMS
from seppo.config import load_config
from seppo.diagnose import diagnose_flipper, verdict_stats
from seppo.train import train

ROOT = Path(__file__).parents[1]


def test_verdict_stats_by_hand():
    import numpy as np

    s = np.array([-1, -1, 1, 0, -1])
    better = np.array([True, False, True, False, True])
    stats = verdict_stats(s, better)
    # flipped: samples 0, 1, 4; of those the reference was better in 0 and 4 → precision 2/3;
    # the reference was better in 0, 2, 4 → recall 2/3.
    assert stats["precision"] == pytest.approx(2 / 3) and stats["recall"] == pytest.approx(2 / 3)
    assert stats["flip_rate"] == pytest.approx(3 / 5) and stats["n"] == 5


def test_diagnose_flipper_per_iteration(tiny_config, tmp_path):
    run = train(tiny_config(tmp_path / "run"))
    result = diagnose_flipper(run, prompts=["a handwritten digit 3", "a handwritten digit 7"], judge="digit",
                              n_per_prompt=2, flipper_draws=2)
    assert {r["iteration"] for r in result["iterations"]} == {1, 2}
    assert {r["draws"] for r in result["iterations"]} == {1, 2}
    for r in result["iterations"]:
        assert r["n"] == 4 and 0 <= r["flip_rate"] <= 1
        assert r["precision"] is None or 0 <= r["precision"] <= 1
    json.dumps(result)  # strict JSON: no NaN


def test_every_benchmark_arm_is_a_valid_config_of_the_embedded_default():
    for arm, spec in ARMS.items():
        if spec is not None:
            cfg = load_config(ROOT / "configs/digits-seppo.yaml", spec[1])
            assert cfg.method == spec[1][0].split("=")[1], arm
