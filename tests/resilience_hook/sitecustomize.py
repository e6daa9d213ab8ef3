"""Loaded at start-up by the training subprocesses of tests/test_resilience.py (via PYTHONPATH).

With SEPPO_TEST_HOLD_CHECKPOINT=step-N, the checkpoint writer stops inside `step-N.tmp` after
its files are written and before the rename, touches `<run>/checkpoints/HOLDING`, and sleeps:
the test then SIGKILLs the process in the middle of a checkpoint write, at a known point.
"""

import os

_hold = os.environ.get("SEPPO_TEST_HOLD_CHECKPOINT")
if _hold:
    import time
    from pathlib import Path

    import seppo.checkpoint as _checkpoint

    _fsync_tree = _checkpoint._fsync_tree

    def _holding_fsync_tree(folder: Path) -> None:
        _fsync_tree(folder)
        if Path(folder).name == f"{_hold}.tmp":
            (Path(folder).parent / "HOLDING").write_text(str(os.getpid()))
            while True:
                time.sleep(1)

    _checkpoint._fsync_tree = _holding_fsync_tree
