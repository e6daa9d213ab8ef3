"""One-thread worker processes forked from a preloaded server.

`seppo benchmark` runs about 190 jobs (training runs, evaluations), each in a fresh process on
one torch thread. Started as `python -m seppo ...`, each spent about 7 s importing torch,
diffusers and transformers before any work (the tiny training run: 7.0 s, now 0.7 s). Here
multiprocessing's forkserver imports them once, under the one-thread environment (OpenMP, MKL
and OpenBLAS read it when they load), and every job is a process forked from it: fresh state
per job as before, its output in a log file, its failure an exit code.

The server is started by the first job, a child of this process in its process group: killing
the group stops it and every job; when this process ends it ends too (after its last job, which
holds it open). It forks from its one Python thread, no OpenMP or torch thread started; its one
other thread is pyarrow's jemalloc purger, whose fork handlers leave the allocator whole in the child.
As with any forkserver, a job imports the caller's main script again (as `__mp_main__`): a
script that starts jobs keeps its work under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import sys
import threading
from contextlib import contextmanager
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from seppo.errors import SeppoError

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SEPPO_THREADS": "1"}
# What `seppo train` and the benchmark's evaluations import. Their module-level `from diffusers
# import X` load the lazily loaded diffusers and transformers classes they use: after these a
# training job imports 7 small modules more, an evaluation 12 (milliseconds; measured).
PRELOAD = ["seppo.cli", "seppo.api", "seppo.train", "seppo.evaluate", "seppo.benchmark"]

_start = threading.Lock()  # held while a job starts: the environment is changed meanwhile
# multiprocessing's exit code for a job whose forkserver ended before it could report the job's
# status (EOF on the job's sentinel): the job's own outcome is unknown, not a failure of the job.
LOST_SERVER = 255


class LostServer(SeppoError):
    """The worker server ended before reporting a job's exit status (exit code 255)."""


def run(what: str, log_path: Path, fn: Callable, *args) -> None:
    """`fn(*args)` in a worker process on one thread, its stdout and stderr in `log_path`. A job
    that raises or exits nonzero raises SeppoError naming the log, which holds the traceback.
    `fn` must be importable by name (a module-level function)."""
    env = {**os.environ, **ONE_THREAD}
    context = multiprocessing.get_context("forkserver")
    job = context.Process(target=_job, args=(str(log_path), env, fn, args), name=what)
    with _start, _environ(ONE_THREAD):  # a server (re)started here reads it before it imports torch
        context.set_forkserver_preload(PRELOAD)
        job.start()
    job.join()
    if job.exitcode == LOST_SERVER:
        raise LostServer(f"{what}: its worker server ended before reporting its exit (exit 255); see {log_path}")
    if job.exitcode != 0:
        raise SeppoError(f"{what} failed (exit {job.exitcode}); see {log_path}")


def run_module(name: str, argv: list[str]) -> None:
    """`python -m NAME ARGV...` in this process: the module runs as `__main__` with that argv."""
    sys.argv = [sys.argv[0], *argv]
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def stop() -> None:
    """End the server (and multiprocessing's resource tracker it started), if running; the next
    job starts a new one. A process that exits ends them anyway."""
    forkserver._forkserver._stop()
    resource_tracker._resource_tracker._stop()


def _job(log_path: str, env: dict, fn: Callable, args: tuple) -> None:
    """The worker's side: the caller's environment, output into the log, one thread, then `fn`.
    An exception is printed (to the log) by multiprocessing, which exits 1; SystemExit(n) exits n."""
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", closefd=False)  # buffered like a fresh process's output to a file
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    torch.set_num_threads(1)
    torch.seed()  # unseeded generators drawn afresh, as a new process's are, not the server's copied into every job
    np.random.seed()
    try:
        fn(*args)
    finally:
        atexit._run_exitfuncs()  # a forked process ends with os._exit: what a normal exit would run


@contextmanager
def _environ(values: dict):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
