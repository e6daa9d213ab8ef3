"""The run directory: everything a run writes, in one layout (DESIGN.md §2).

| path                      | written                                  | read by |
|---------------------------|------------------------------------------|---------|
| `config.yaml`             | the resolved config, at the start        | resume, eval, report, diagnose, sampling |
| `metrics.jsonl`           | one row per logged update                | report, ablate, demos, diagnose |
| `tensorboard/<project>/`  | the same rows, by accelerate's tracker (`log.report_to`, seppo.trackers) | TensorBoard |
| `wandb/`                  | the same, with `log.report_to: wandb`    | wandb |
| `checkpoints/step-N/`     | seppo.checkpoint                         | resume |
| `pool/theta-J.safetensors`| the reference pool's snapshots (seppo.pool) | resume, report, diagnose |
| `final/`                  | the export (seppo.export), with its model card `README.md` (seppo.card) | sampling, eval |
| `summary.json`            | at the end                               | ablate, demos |
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from seppo import __version__
from seppo.config import Config, load_config, save_config, to_dict
from seppo.errors import SeppoError
from seppo.pool import snapshot_files


class RunDir:
    """A run directory, written by `seppo train` and read by everything after it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoints = self.path / "checkpoints"
        self.pool = self.path / "pool"
        self.final = self.path / "final"

    @classmethod
    def of(cls, spec: str) -> RunDir | None:
        """The run directory a MODEL argument names (`RUN` or `RUN+LORA`), or None."""
        run = cls(spec.partition("+")[0])
        return run if run.is_run() else None

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def holds_progress(self) -> bool:
        """Whether a run here got past set-up: it logged, checkpointed or exported. A folder with
        only `config.yaml` (and what set-up wrote) is a run that failed before training."""
        return self.is_run() and any(p.exists() for p in (self.metrics_path, self.checkpoints, self.final))

    # ------------------------------------------------------------------ reading

    def config(self) -> Config:
        """The resolved config the run recorded (not validated again: it ran)."""
        return load_config(self.config_path, check=False)

    def metrics(self) -> list[dict]:
        """`metrics.jsonl` as rows, one per logged update ([] if absent)."""
        return read_jsonl(self.metrics_path)

    def summary(self) -> dict:
        return json.loads(self.summary_path.read_text())

    def finished_as(self, cfg: Config) -> bool:
        """Whether a run here finished under this seppo version with the config `cfg` resolves to
        (its output folder, `overwrite`, `resume` and logging aside). Training is bit-identical run
        to run on one machine (tests/test_train.py), so such a run is the one `cfg` would train."""
        if not (self.summary_path.is_file() and self.config_path.is_file()):
            return False
        return self.summary().get("seppo_version") == __version__ and _what_decides(self.config()) == _what_decides(cfg)

    def snapshots(self) -> dict[int, Path]:
        """The pool's snapshots {J: pool/theta-J.safetensors}, by J."""
        return snapshot_files(self.pool)

    # ------------------------------------------------------------------ writing

    def refuse_if_taken(self, cfg: Config, holds_run: bool | None = None) -> None:
        """A folder holding another run is used only with resume=true or overwrite=true; one whose
        run failed before training is not taken. `holds_run`: what the folder held when looked at, if not now."""
        holds_run = self.holds_progress() if holds_run is None else holds_run
        if holds_run and not (cfg.resume or cfg.overwrite):
            raise SeppoError(f"{self.path} already holds a run: pass resume=true to continue it or overwrite=true to replace it")

    def prepare(self, cfg: Config, is_main: bool, barrier=lambda: None) -> None:
        """Check the folder (every process), then clear, create and probe it, and save the
        resolved config (the main process)."""
        holds_run, failed_before = self.holds_progress(), self.is_run() and not self.holds_progress()
        barrier()  # every process looks before the main one writes config.yaml
        self.refuse_if_taken(cfg, holds_run)  # what it held before the barrier: the main one may have written since
        if not is_main:
            return
        if (holds_run and cfg.overwrite or failed_before) and not cfg.resume:
            shutil.rmtree(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise SeppoError(f"output directory {self.path} is not writable ({e.strerror})") from None
        save_config(cfg, self.config_path)

    def log(self, row: dict) -> None:
        """Append one metrics row (the trackers get its numbers from the loop: seppo.trackers)."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop rows a killed run wrote after the checkpoint, so each step appears once."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in (line for line in self.metrics_path.read_text().splitlines() if line.strip()):
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError):
                break  # a half-written last line
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def write_summary(self, summary: dict) -> None:
        self.summary_path.write_text(json.dumps(summary, indent=1))


def _what_decides(cfg: Config) -> dict:
    """The config fields a run's results depend on."""
    fields = to_dict(cfg)
    for key in ("output_dir", "overwrite", "resume", "log"):
        fields.pop(key)
    return fields


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
