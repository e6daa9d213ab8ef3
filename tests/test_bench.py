"""The update benchmark (benchmarks/bench_update.py) runs on the CPU and writes what it promises
(not how fast it is)."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench_update as bench  # noqa: E402  (benchmarks/ is not a package)

PHASES_OPTIMIZED = {"update", "generate", "policy_fwd_bwd", "reference_fwd", "optimizer"}
PHASES_PLAIN = PHASES_OPTIMIZED | {"text_encode", "vae_encode"}
STATS = ("median_s", "q1_s", "q3_s", "min_s", "max_s", "peak_memory_bytes")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    bench.main(["--preset", "tiny", "--pairs", "2", "--steps", "2", "--repeats", "1", "--warmup", "0",
                "--micro-pairs", "1", "--try", "mode=lora", "--memory-modes", "lora", "--memory-batches", "1",
                "--out", str(out)])
    return json.loads((out / "bench.json").read_text())


def test_every_section_ran(report):
    assert report["errors"] == {} and report["skipped"] == []
    assert report["preset"] == "tiny" and report["settings"]["pairs"] == 2
    assert _positive(report["ceiling"]["tflops"])


@pytest.mark.parametrize("name, phases", [("plain", PHASES_PLAIN), ("optimized", PHASES_OPTIMIZED)])
def test_variant_fields_finite_and_positive(report, name, phases):
    variant = report[name]
    assert set(variant["phases"]) == phases
    for phase, stats in variant["phases"].items():
        assert all(_positive(stats[k]) for k in STATS), (phase, stats)
        assert stats["q1_s"] <= stats["median_s"] <= stats["q3_s"]
    for key in ("pairs_per_s", "samples_per_s", "training_tflops", "training_ceiling_share"):
        assert _positive(variant[key]), key
    # Matmuls and convolutions are counted in every model phase; AdamW has none.
    assert all(_positive(variant["flops"][p]) for p in phases - {"optimizer"})
    assert variant["flops"]["update"] > variant["flops"]["generate"]


def test_ratio_is_plain_time_over_optimized_time(report):
    plain = report["plain"]["phases"]["update"]["median_s"]
    optimized = report["optimized"]["phases"]["update"]["median_s"]
    assert report["optimized"]["ratio_vs_plain"] == pytest.approx(plain / optimized)
    assert report["optimized"]["pairs_per_s"] == pytest.approx(2 / optimized)


def test_lever_trial_and_memory_probe(report):
    lora = report["levers_tried"]["mode=lora"]
    assert lora["info"]["levers"]["mode"] == "lora" and report["optimized"]["info"]["levers"]["mode"] == "full"
    assert lora["info"]["trainable_parameters"] < report["optimized"]["info"]["trainable_parameters"]
    assert _positive(lora["ratio_vs_plain"])
    probe = report["memory"]["lora"]
    assert probe["pool_snapshots"] == 7 and _positive(probe["pool_bytes"])
    assert _positive(probe["batches"]["1"]["peak_memory_bytes"])
    assert "| optimized |" in report["summary_markdown"]


def test_levers_are_training_config_fields():
    """A lever is a `train.*` field: a trial changes the training config the update runs."""
    from seppo.errors import ConfigError

    assert bench.lever_changes("compile=reference,mixed_precision=bf16") == {"compile": "reference",
                                                                             "mixed_precision": "bf16"}
    assert bench.lever_phases("compile=reference") == ("generate", "policy_fwd_bwd", "reference_fwd")
    s = bench.Settings(pairs=2, steps=3)
    cfg = bench.training_config(s, bench.lever_changes("mode=lora"))
    assert cfg.train.mode == "lora" and cfg.sampler.steps == 3 and cfg.method == "seppo"
    with pytest.raises(ValueError, match="not a lever: channels_last"):
        bench.lever_changes("channels_last=on")  # measured, did not help: dropped (benchmarks/README.md)
    with pytest.raises(ConfigError, match="train.mode"):
        bench.training_config(s, {"mode": "half"})
