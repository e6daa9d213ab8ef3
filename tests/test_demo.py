"""`seppo demo --quick`: every stage of the embedded default runs (its time is reported, not asserted)."""

import json
import time
from html.parser import HTMLParser

import torch

import seppo.demo as demo
from seppo.cli import main
from seppo.config import load_config
from seppo.embedded.budget import DEMO_CONFIG, QUICK, selected_overrides
from seppo.embedded.preference import preference_judge_path


def test_quick_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    # the learned judge not yet fitted (its pairs may be cached by an earlier test): built beside the
    # runs, as a full first run does (--quick alone builds its toy judge in process)
    monkeypatch.setattr(demo, "JUDGE_BESIDE_WHEN_QUICK", True)
    world = load_config(DEMO_CONFIG, QUICK).pretrain
    judge_file = preference_judge_path(world)
    earlier = torch.load(judge_file, weights_only=True) if judge_file.exists() else None
    judge_file.unlink(missing_ok=True)
    t0 = time.time()
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    seconds = time.time() - t0
    out = capsys.readouterr().out
    assert "building the learned preference judge beside the training runs" in out and judge_file.exists()
    if earlier is not None:  # built in a subprocess, the same judge as built in process
        rebuilt = torch.load(judge_file, weights_only=True)
        assert all(torch.equal(rebuilt["state_dict"][k], v) for k, v in earlier["state_dict"].items())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["base", "sft", "dpo", "seppo"]
    for row in summary["rows"]:
        assert list(row["judges"]) == ["preference", "oracle", "digit", "stroke"]
        for judge in row["judges"].values():
            assert judge["lo"] <= judge["mean"] <= judge["hi"]
        assert 0.0 <= row["judges"]["digit"]["lo"] and row["judges"]["digit"]["hi"] <= 1.0
    # each method at the settings the benchmark selected and ships
    assert summary["selected"] == {m: selected_overrides(m) for m in ("sft", "dpo", "seppo")}
    assert all(any(o.startswith("train.lr=") for o in summary["selected"][m]) for m in ("sft", "dpo", "seppo"))
    assert 0.0 <= summary["preference_judge"]["heldout_agreement"] <= 1.0  # reported; its bound is test_world_calibration's
    assert "illustrative" in out and "seppo benchmark" in out
    seppo_row = summary["rows"][-1]
    assert seppo_row["flip_rate"] is not None and 0 <= seppo_row["flip_rate"] <= 1
    assert "| seppo |" in out and (tmp_path / "table.md").read_text().count("| seppo |") == 1
    for name in ("curves.png", "report.html", "eval/samples-seppo.png", "eval/eval.json"):
        assert (tmp_path / name).stat().st_size > 0
    HTMLParser().feed((tmp_path / "report.html").read_text())
    # Every method ran the same budget: the same number of updates and winners seen.
    updates = {m: len((tmp_path / "runs" / m / "metrics.jsonl").read_text().splitlines()) for m in ("sft", "dpo", "seppo")}
    assert len(set(updates.values())) == 1
    print(f"seppo demo --quick: {seconds:.1f} s")

    # A rerun reuses each finished run (same config and seppo version) and reports the same table.
    final_files = {m: (tmp_path / "runs" / m / "final").stat().st_mtime_ns for m in ("sft", "dpo", "seppo")}
    table = (tmp_path / "table.md").read_text()
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("reusing the finished run") == 3 and "beside the training runs" not in out
    assert {m: (tmp_path / "runs" / m / "final").stat().st_mtime_ns for m in final_files} == final_files
    assert (tmp_path / "table.md").read_text() == table


def test_a_finished_run_is_reused_only_with_the_same_config_and_version(tmp_path):
    from seppo.config import load_config, save_config
    from seppo.run_dir import RunDir

    cfg = load_config(None, ["method=sft", f"output_dir={tmp_path}"])
    run = RunDir(tmp_path)
    assert not run.finished_as(cfg)  # nothing there
    save_config(cfg, run.config_path)
    assert not run.finished_as(cfg)  # started, never finished
    run.write_summary({"seppo_version": "0.0.0-other"})
    assert not run.finished_as(cfg)  # finished under another version
    import seppo

    run.write_summary({"seppo_version": seppo.__version__})
    assert run.finished_as(cfg)
    # where it lies and how it logged do not change its results; anything else does
    assert run.finished_as(load_config(None, ["method=sft", "output_dir=elsewhere", "overwrite=true", "log.report_to=none"]))
    assert not run.finished_as(load_config(None, ["method=sft", f"output_dir={tmp_path}", "train.lr=3e-5"]))
    assert not run.finished_as(load_config(None, ["method=dpo", f"output_dir={tmp_path}"]))


def test_a_failed_run_leaves_no_judge_build_behind(tmp_path, monkeypatch):
    import pytest

    from seppo.errors import SeppoError

    judge_file = preference_judge_path(load_config(DEMO_CONFIG, QUICK).pretrain)
    judge_file.unlink(missing_ok=True)  # so the demo starts building it beside its runs
    started = []

    def beside(world, log):
        started.append(real_beside(world, log))
        return started[-1]

    def fail(cfg):
        raise SeppoError("training failed")

    real_beside = demo._judge_beside
    monkeypatch.setattr(demo, "JUDGE_BESIDE_WHEN_QUICK", True)
    monkeypatch.setattr(demo, "_judge_beside", beside)
    monkeypatch.setattr(demo, "train", fail)
    with pytest.raises(SeppoError, match="training failed"):
        demo.run_demo(tmp_path, quick=True)
    assert len(started) == 1 and started[0].poll() is not None  # killed and reaped, not left running
