"""Experiment trackers through accelerate, as diffusers' and TRL's training scripts use them.

    Accelerator(log_with=log.report_to, project_config=…)    at the start of `seppo train`
    accelerator.init_trackers(log.project, config=…)          once the run directory is ready
    accelerator.log(numbers of the metrics row, step=…)       on every logged update
    accelerator.end_training()                                at the end (closes the trackers)

`RUN/metrics.jsonl` stays the local record, written whatever the trackers (seppo.run_dir).

| `log.report_to` | trackers                                   | written to                           |
|-----------------|--------------------------------------------|--------------------------------------|
| `tensorboard`   | accelerate's TensorBoard tracker (default) | `RUN/tensorboard/<log.project>/`     |
| `wandb`         | accelerate's W&B tracker (`seppo[wandb]`)  | `RUN/wandb/`; project `log.project`, run name the run folder's; `WANDB_MODE=offline` runs without an account |
| `all`           | every tracker accelerate finds installed   |                                      |
| `none`          | none                                       |                                      |

Missing wandb is a config error (seppo.config.validate), before any work.
"""

from __future__ import annotations

from pathlib import Path

from accelerate.utils import ProjectConfiguration

from seppo.config import Config, to_dict


def accelerator_kwargs(cfg: Config) -> dict:
    """The tracker arguments of `Accelerator(...)`: none for `log.report_to: none`."""
    if cfg.log.report_to == "none":
        return {}
    run = Path(cfg.output_dir)
    return {"log_with": cfg.log.report_to,
            "project_config": ProjectConfiguration(project_dir=str(run), logging_dir=str(run / "tensorboard"))}


def start(accelerator, cfg: Config) -> None:
    """Start the trackers with the resolved config as their hyperparameters (main process only)."""
    if cfg.log.report_to == "none":
        return
    run = Path(cfg.output_dir)
    accelerator.init_trackers(cfg.log.project, config=flat_config(cfg),
                              init_kwargs={"wandb": {"name": run.name, "dir": str(run)}})


def flat_config(cfg: Config) -> dict[str, str | int | float | bool]:
    """The resolved config as `{"train.lr": 1e-4, ...}`: TensorBoard's hyperparameters take
    only numbers, strings and booleans, so null becomes "null" and a list a comma-separated string."""
    flat: dict[str, str | int | float | bool] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif value is None:
                flat[prefix + key] = "null"
            elif isinstance(value, (list, tuple)):
                flat[prefix + key] = ",".join(map(str, value))
            else:
                flat[prefix + key] = value

    walk(to_dict(cfg), "")
    return flat


def scalars(row: dict) -> dict[str, float]:
    """The numbers of a metrics row, as the trackers log them (the step is their x axis)."""
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}
