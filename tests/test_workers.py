"""Worker processes forked from a preloaded server (seppo.workers): the benchmark's runs train
the same bits as `python -m seppo train` in a new process; a failure names its log; killing
the process group ends the server and its jobs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seppo import workers
from seppo.benchmark import _evaluate_apart, train_run
from seppo.embedded.budget import QUICK
from seppo.errors import SeppoError

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs/digits-seppo.yaml"


@pytest.fixture(scope="module", autouse=True)
def server():
    """One server for this module's jobs, ended after them (conftest fails a session it outlives)."""
    yield
    workers.stop()


def test_a_worker_trains_the_same_bits_as_a_new_process(tmp_path, tiny_config):
    tiny_config(tmp_path / "world")  # the tiny world built once, before either run
    overrides = [*QUICK, "method=seppo", "seed=3"]
    new_process = tmp_path / "process"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SEPPO_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "seppo", "train", str(CONFIG), *overrides, f"output_dir={new_process}",
                    "overwrite=true", "log.progress=false"], env=env, check=True, capture_output=True)
    worker = train_run(CONFIG, overrides, tmp_path / "worker")
    assert "final model:" in (tmp_path / "worker.log").read_text()
    files = sorted(p.relative_to(new_process) for p in (new_process / "final").rglob("*.safetensors"))
    assert [str(f) for f in files] == ["final/text_encoder/model.safetensors", "final/unet/diffusion_pytorch_model.safetensors"]
    for f in files:
        a, b = load_file(new_process / f), load_file(worker / f)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f


def test_a_failing_run_names_its_log(tmp_path):
    with pytest.raises(SeppoError, match=rf"benchmark run r failed \(exit 2\); see {tmp_path / 'r.log'}$"):
        train_run(CONFIG, ["train.no_such_key=1"], tmp_path / "r")
    assert "seppo: error:" in (tmp_path / "r.log").read_text() and "no_such_key" in (tmp_path / "r.log").read_text()


def test_a_job_that_raises_exits_1_with_its_traceback_in_the_log(tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(SeppoError, match=rf"benchmark evaluation into {out} failed \(exit 1\); see {out / 'eval.log'}$"):
        _evaluate_apart({"out": str(out), "no_such_argument": 1})
    log = (out / "eval.log").read_text()
    assert "Traceback (most recent call last):" in log and "unexpected keyword argument 'no_such_argument'" in log


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# A benchmark stand-in: one job (a 60 s sleep) on a server that preloads nothing (it starts at once).
SLEEPER = ("import time; from pathlib import Path; from seppo import workers; workers.PRELOAD = []; "
           "workers.run('sleeper', Path({log!r}), time.sleep, {seconds})")


@pytest.mark.parametrize("ending", ["exits", "killed"])
def test_the_server_and_its_jobs_end_with_the_process_group(tmp_path, ending):
    seconds = 2 if ending == "exits" else 60
    parent = subprocess.Popen([sys.executable, "-c", SLEEPER.format(log=str(tmp_path / "job.log"), seconds=seconds)],
                              start_new_session=True)  # a group of its own, as a benchmark started from a shell
    started, jobs, deadline = [], [], time.monotonic() + 60
    while not jobs and parent.poll() is None and time.monotonic() < deadline:  # the server, the resource tracker, the job
        started = _children(parent.pid)
        jobs = [j for p in started for j in _children(p)]
        time.sleep(0.05)
    assert len(started) == 2 and len(jobs) == 1
    assert {os.getpgid(p) for p in [*started, *jobs]} == {parent.pid}  # none in a session of its own
    if ending == "killed":
        os.killpg(parent.pid, signal.SIGKILL)
    assert parent.wait(timeout=60) == (-signal.SIGKILL if ending == "killed" else 0)
    deadline = time.monotonic() + 10
    while (left := [p for p in [*started, *jobs] if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []
