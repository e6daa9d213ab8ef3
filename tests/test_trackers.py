"""`log.report_to`: accelerate's trackers write what `RUN/metrics.jsonl` holds; wandb offline
where it is installed; a one-line error where it is asked for and missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seppo import trackers
from seppo.config import load_config
from seppo.errors import ConfigError
from seppo.train import train

HAS_WANDB = importlib.util.find_spec("wandb") is not None


def test_tensorboard_through_accelerate_logs_every_metrics_row(tiny_config, tmp_path):
    run = train(tiny_config(tmp_path / "run", "log.report_to=tensorboard"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = list((run / "tensorboard" / "seppo").rglob("events.out.tfevents.*"))
    assert events, sorted(p.relative_to(run) for p in run.rglob("*"))
    logged = EventAccumulator(str(events[0].parent)).Reload()
    loss = logged.Scalars("loss")
    assert [e.step for e in loss] == [r["step"] for r in rows]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert "flip_rate" in logged.Tags()["scalars"]


def test_none_writes_only_the_local_record(tiny_config, tmp_path):
    run = train(tiny_config(tmp_path / "run", "log.report_to=none"))
    assert (run / "metrics.jsonl").stat().st_size > 0
    assert not (run / "tensorboard").exists() and not (run / "wandb").exists()


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is optional (pip install 'seppo[wandb]')")
def test_wandb_offline(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    run = train(tiny_config(tmp_path / "run", "log.report_to=wandb"))
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, sorted(p.name for p in (run / "wandb").iterdir())
    assert list(offline[0].glob("*.wandb"))  # the run's records, synced later with `wandb sync`
    assert (run / "metrics.jsonl").stat().st_size > 0


def test_missing_wandb_is_a_one_line_config_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"log.report_to: wandb is not installed \(pip install \"seppo\[wandb\]\"\)") as e:
        load_config(None, ["log.report_to=wandb"])
    assert "\n" not in str(e.value)


def test_report_to_names_a_known_tracker():
    with pytest.raises(ConfigError, match="log.report_to"):
        load_config(None, ["log.report_to=comet"])


def test_the_old_key_still_reads():
    assert load_config(None, ["log.tensorboard=false"]).log.report_to == "none"
    assert load_config(None, ["log.tensorboard=true"]).log.report_to == "tensorboard"
    with pytest.raises(ConfigError, match="log.tensorboard"):
        load_config(None, ["log.tensorboard=false", "log.report_to=wandb"])


def test_hyperparameters_are_flat_numbers_and_strings():
    flat = trackers.flat_config(load_config(None, []))
    assert flat["train.lr"] > 0 and flat["method"] == "seppo"
    assert all(isinstance(v, (str, int, float, bool)) for v in flat.values())
