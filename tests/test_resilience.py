"""Nothing lost (issue 7): SIGKILL at any moment + resume=true, atomic rotated checkpoints,
SIGTERM/SIGINT, and non-finite losses.

The killed runs are real `python -m seppo train` subprocesses on the tiny embedded world
(built once per session by conftest, reused through $SEPPO_CACHE). To kill *inside* a
checkpoint write at a known point, the subprocess loads `tests/resilience_hook/sitecustomize.py`
(via PYTHONPATH): with SEPPO_TEST_HOLD_CHECKPOINT=step-N it parks the writer in `step-N.tmp`
after the files are written and before the rename. Every run uses one thread
(SEPPO_THREADS=1, OMP_NUM_THREADS=1) so the arithmetic is the same in every process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY
from safetensors.torch import load_file

from seppo import cli
from seppo.checkpoint import complete_checkpoints, load_checkpoint, save_checkpoint
from seppo.train import EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(next((p for p in (ROOT / "configs" / "digits-seppo.yaml", ROOT / "src" / "seppo" / "configs" / "digits.yaml")
                   if p.exists()), ROOT / "configs" / "digits-seppo.yaml"))
HOOK = Path(__file__).resolve().parent / "resilience_hook"
# K·U = 3·2 updates, a checkpoint after every update but the last, the newest two kept.
RUN = [*TINY, "train.iterations=3", "train.updates_per_iteration=2", "checkpoints.every=1", "checkpoints.keep_last=2"]
TIME_FIELDS = ("time_generate", "time_rest")
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")  # transformers' "Loading weights" bars, not messages


# --------------------------------------------------------------------------- helpers


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def untimed(rs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in rs]


def final_unet(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "unet" / "diffusion_pytorch_model.safetensors"))


def assert_same_run(run_dir: Path, baseline: Path) -> None:
    """Identical metric rows (timings aside), each step once, and bit-identical final weights."""
    got, want = untimed(rows(run_dir)), untimed(rows(baseline))
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert got == want
    a, b = final_unet(run_dir), final_unet(baseline)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["reference_draws"] == json.loads((baseline / "summary.json").read_text())["reference_draws"]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def env(hold: str | None = None) -> dict:
    e = dict(os.environ, SEPPO_THREADS="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOK), e.get("PYTHONPATH", "")) if p)
    e.pop("SEPPO_TEST_HOLD_CHECKPOINT", None)
    if hold:
        e["SEPPO_TEST_HOLD_CHECKPOINT"] = hold
    return e


class Training:
    """`python -m seppo train` as a subprocess, with its stdout/stderr in files."""

    def __init__(self, run_dir: Path, *extra: str, hold: str | None = None):
        self.run_dir = run_dir
        self.out, self.err = run_dir.with_suffix(".out"), run_dir.with_suffix(".err")
        cmd = [sys.executable, "-m", "seppo", "train", CONFIG, *RUN, f"output_dir={run_dir}", *extra]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env(hold), stdout=out, stderr=err)

    def wait_for(self, predicate, what: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                pytest.fail(f"training exited ({self.proc.returncode}) before {what}:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what}:\n{self.stderr()[-3000:]}")
            time.sleep(0.002)

    def rows_written(self) -> int:
        path = self.run_dir / "metrics.jsonl"
        return path.read_text().count("\n") if path.exists() else 0

    def holding(self) -> bool:
        return (self.run_dir / "checkpoints" / "HOLDING").exists()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stderr(self) -> str:
        return self.err.read_text()


def resume_in_process(run_dir: Path, capsys, *args: str) -> str:
    """`seppo train ... resume=true` through the CLI in this process; returns its stdout."""
    capsys.readouterr()
    code = cli.main(["train", *(args or (CONFIG, *RUN, f"output_dir={run_dir}")), "resume=true"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def one_thread():
    """The in-process runs use one thread too, like the subprocesses (and the CLI's SEPPO_THREADS)."""
    old_threads, old_env = torch.get_num_threads(), os.environ.get("SEPPO_THREADS")
    os.environ["SEPPO_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old_threads)
    if old_env is None:
        os.environ.pop("SEPPO_THREADS", None)
    else:
        os.environ["SEPPO_THREADS"] = old_env


@pytest.fixture(scope="module")
def baseline(one_thread, tmp_path_factory) -> Path:
    """The uninterrupted run, in this process with one thread; it also builds the tiny world
    and the latent cache (conftest's TINY settings), so the subprocesses only read them."""
    run_dir = tmp_path_factory.mktemp("resilience") / "baseline"
    assert cli.main(["train", CONFIG, *RUN, f"output_dir={run_dir}"]) == 0
    assert [r["step"] for r in rows(run_dir)] == [1, 2, 3, 4, 5, 6]
    assert not any(r["skipped"] for r in rows(run_dir))
    return run_dir


# --------------------------------------------------------------------------- SIGKILL + resume


def test_killed_while_writing_the_first_checkpoint_resumes_from_scratch(baseline, tmp_path, capsys):
    """Killed inside `step-1.tmp`: no complete checkpoint exists, so resume=true starts over,
    dropping the killed run's metric rows."""
    run_dir = tmp_path / "run"
    training = Training(run_dir, hold="step-1")
    training.wait_for(training.holding, "the first checkpoint write")
    training.kill()
    tmp = run_dir / "checkpoints" / "step-1.tmp"
    assert tmp.is_dir() and (tmp / "state.json").exists()  # every file is there, but it was never renamed
    assert complete_checkpoints(run_dir) == []
    assert [r["step"] for r in rows(run_dir)] == [1]
    out = resume_in_process(run_dir, capsys)
    assert "resuming" not in out  # there was nothing to resume from
    assert_same_run(run_dir, baseline)


def test_killed_mid_update_resumes_exactly(baseline, tmp_path, capsys):
    """Killed at a random moment after the third metric row: resume from the newest complete
    checkpoint, drop the rows written after it, end identical."""
    run_dir = tmp_path / "run"
    training = Training(run_dir)
    training.wait_for(lambda: training.rows_written() >= 3, "3 metric rows")
    training.kill()
    done = complete_checkpoints(run_dir)
    assert done, "a checkpoint is written after every update"
    assert len(done) <= 2  # keep_last
    step = int(done[-1].name.split("-")[1])
    assert 2 <= step <= 5
    out = resume_in_process(run_dir, capsys)
    assert f"from update {step}" in out
    assert_same_run(run_dir, baseline)


def test_killed_while_writing_a_later_checkpoint_ignores_the_tmp(baseline, tmp_path, capsys):
    """Killed inside `step-4.tmp` (complete-looking, never renamed): resume takes step-3."""
    run_dir = tmp_path / "run"
    training = Training(run_dir, hold="step-4")
    training.wait_for(training.holding, "the step-4 checkpoint write")
    training.kill()
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == ["step-2", "step-3", "step-4.tmp"]
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step-2", "step-3"]
    assert [r["step"] for r in rows(run_dir)] == [1, 2, 3, 4]
    out = resume_in_process(run_dir, capsys)
    assert "from update 3" in out
    assert_same_run(run_dir, baseline)
    # The resumed run removed the stale .tmp and rotated to the newest two.
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == ["step-4", "step-5"]


# --------------------------------------------------------------------------- checkpoints: atomic and rotated


def _save(run_dir: Path, step: int, keep_last: int) -> Path:
    weights = {"w": torch.full((2,), float(step))}
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return save_checkpoint(run_dir, step, weights=weights, optimizer=optimizer, scheduler=scheduler,
                           state={"note": step}, keep_last=keep_last)


def test_tmp_checkpoint_is_never_complete_and_rotation_keeps_the_newest(tmp_path):
    for step in (1, 2, 9, 10):  # numeric order: step-10 is newer than step-9
        _save(tmp_path, step, keep_last=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-9", "step-10"]
    assert load_checkpoint(complete_checkpoints(tmp_path)[-1])["weights"]["w"].tolist() == [10.0, 10.0]
    # A killed writer's folder, complete-looking (it even has state.json), with a higher step.
    stale = tmp_path / "checkpoints" / "step-11.tmp"
    stale.mkdir()
    (stale / "state.json").write_text(json.dumps({"step": 11}))
    assert complete_checkpoints(tmp_path)[-1].name == "step-10"
    # A step-N folder without state.json is not complete either.
    (tmp_path / "checkpoints" / "step-12").mkdir()
    assert complete_checkpoints(tmp_path)[-1].name == "step-10"
    (tmp_path / "checkpoints" / "step-12").rmdir()
    # The next save clears the stale .tmp; keep_last=1 still keeps the one just written.
    _save(tmp_path, 11, keep_last=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-11"]
    assert load_checkpoint(tmp_path / "checkpoints" / "step-11")["state"] == {"step": 11, "note": 11}


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_exits_3_and_the_printed_command_resumes(signum, baseline, tmp_path, capsys):
    run_dir = tmp_path / "run"
    training = Training(run_dir, "checkpoints.every=0")  # the only checkpoint is the signal's
    training.wait_for(lambda: training.rows_written() >= 2, "2 metric rows")
    training.proc.send_signal(signum)
    assert training.proc.wait(timeout=120) == EXIT_INTERRUPTED == 3
    err = training.stderr()
    assert f"{signal.Signals(signum).name}: finishing this update" in err
    assert "Traceback" not in err
    done = complete_checkpoints(run_dir)
    assert len(done) == 1
    step = int(done[0].name.split("-")[1])
    assert [r["step"] for r in rows(run_dir)] == list(range(1, step + 1))  # the update in flight finished
    assert 2 <= step < 6
    command = next(line for line in err.splitlines() if "continue with: seppo train" in line)
    args = command.split("continue with: seppo ", 1)[1].split()
    assert args[0] == "train" and args[-1] == "resume=true"
    out = resume_in_process(run_dir, capsys, *args[1:-1])
    assert f"from update {step}" in out
    assert_same_run(run_dir, baseline)


def test_second_sigint_aborts_at_once(tmp_path, baseline):
    """The first SIGINT only asks for a stop; a second one aborts even mid-checkpoint, and the
    half-written checkpoint is not taken as complete."""
    run_dir = tmp_path / "run"
    training = Training(run_dir, hold="step-2")
    training.wait_for(training.holding, "the step-2 checkpoint write")
    training.proc.send_signal(signal.SIGINT)
    training.wait_for(lambda: "SIGINT: finishing this update" in training.stderr(), "the first SIGINT's message")
    time.sleep(0.3)
    assert training.proc.poll() is None  # still parked in the write: the first SIGINT did not abort
    training.proc.send_signal(signal.SIGINT)
    code = training.proc.wait(timeout=30)
    assert code not in (0, EXIT_INTERRUPTED)
    assert "KeyboardInterrupt" in training.stderr()
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step-1"]


# --------------------------------------------------------------------------- non-finite losses


def test_non_finite_losses_are_skipped_then_the_run_stops(one_thread, tmp_path, capsys):
    """β = 1e39 overflows float32: z = −½β(Δ_w − sΔ_r) is inf·0 = nan or ±inf, so every loss is
    non-finite. Each update is skipped (weights untouched); after max_bad_steps in a row the
    run stops with one line, exit 2, and its checkpoints are complete and loadable."""
    run_dir = tmp_path / "run"
    capsys.readouterr()
    code = cli.main(["train", CONFIG, *RUN, f"output_dir={run_dir}", "beta=1e39", "train.max_bad_steps=3"])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.strip().splitlines() if not PROGRESS_BAR.search(line)]
    assert len(lines) == 1 and lines[0].startswith("seppo: error: 3 consecutive updates had a non-finite")
    assert "Traceback" not in err and str(run_dir / "checkpoints") in lines[0]
    metrics = rows(run_dir)
    assert [r["step"] for r in metrics] == [1, 2, 3]
    assert [r["skipped"] for r in metrics] == [True, True, True]
    assert [r["bad_steps"] for r in metrics] == [1, 2, 3]
    assert not any(torch.isfinite(torch.tensor(r["loss"])) for r in metrics)
    assert not (run_dir / "final").exists()
    done = complete_checkpoints(run_dir)
    assert [p.name for p in done] == ["step-2", "step-3"]
    theta0 = load_file(str(run_dir / "pool" / "theta-0.safetensors"))
    for folder in done:
        ckpt = load_checkpoint(folder)
        assert all(torch.equal(ckpt["weights"][k], theta0[k]) for k in theta0)  # no bad update applied
        assert ckpt["state"]["bad_total"] == int(folder.name.split("-")[1])
