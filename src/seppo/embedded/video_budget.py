"""The video world's budgets and how a run on it is configured, shared by `seppo demo --video`
and `seppo benchmark --video`.

| name                 | what                                                                     |
|----------------------|--------------------------------------------------------------------------|
| `VideoBudget`        | everything a video demo or benchmark run costs: the world, the run, the evaluation |
| `FULL`, `QUICK`      | the full budget and the toy one of the tests (on the quick image world)  |
| `video_run_overrides`| a method's run on the video model: `seppo train CONFIG <these> …`          |
| `video_prompts`      | the evaluation prompts: digits 0..eval_digits−1 × 4 directions            |

Every run is `configs/digits-seppo.yaml` with the video model (`model.path=<base>`,
`model.motion_adapter=<base>/motion_adapter`), only the motion modules training
(`train.train_motion_only`), as on a real AnimateDiff model. Winners come from the `winners/` imagefolder of GIFs; a method
that needs pairs (Diffusion-DPO) reads the pairs parquet, whose `jpg_0`/`jpg_1` hold GIF bytes
(decoded as clips when `data.num_frames` is set for a video model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seppo.embedded.budget import QUICK_WORLD
from seppo.embedded.clips import all_video_prompts
from seppo.embedded.video_world import VideoWorldConfig, adapter_folder
from seppo.methods import METHODS


@dataclass
class VideoBudget:
    """Everything a video run's cost depends on (ours)."""

    pretrain: list = field(default_factory=list)  # overrides of the image base (`pretrain.*`)
    video: VideoWorldConfig = field(default_factory=VideoWorldConfig)
    iterations: int = 4  # K
    updates_per_iteration: int = 10  # U
    batch_size: int = 16  # clips per update
    sampler_steps: int = 4  # guided DDIM steps for reference clips
    eval_per_cell: int = 2  # evaluation clips per (digit, direction) cell
    eval_digits: int = 10  # evaluation cells: digits 0..eval_digits−1 × 4 directions
    eval_steps: int = 8  # guided DDIM steps at evaluation
    guidance: float = 3.0
    gif_clips: int = 40  # clips tiled into each model's GIF in the demo (one per cell)


# Full: the video world as `VideoWorldConfig` has it (800 + 800 + 1,200 updates of 12 four-frame
# clips, the base at 600 of the last 1,200: about 18 minutes on one thread of these 2 cores,
# shipped prebuilt with its 160 pairs, so a fresh clone copies them); K=4 × U=10 updates of 8 clips
# with 4-step guided reference clips per method; 80 evaluation clips per model at 6 steps.
FULL = VideoBudget(video=VideoWorldConfig(prompts_per_cell=4), iterations=4, updates_per_iteration=10, batch_size=8,
                   sampler_steps=4, eval_per_cell=2, eval_steps=6)
# Quick: the same pipeline at toy sizes on the quick image world (seppo.embedded.budget), which
# the tests' session cache already holds.
QUICK = VideoBudget(
    pretrain=QUICK_WORLD,
    video=VideoWorldConfig(stage_steps=(2, 2, 4), base_at=2, batch_size=4, prompts_per_cell=2, generator_steps=2,
                           pair_digits=3),
    iterations=2, updates_per_iteration=1, batch_size=4, sampler_steps=2, eval_per_cell=1, eval_digits=2, eval_steps=2)


def video_run_overrides(method: str, base: Path, data: Path, budget: VideoBudget) -> list[str]:
    """`method`'s run on the video model `base` with the Moving-Digits folder `data` at `budget`
    (method, output folder and seed are the caller's)."""
    source = (["data.source=pickapic", f"data.path={Path(data) / 'train.parquet'}"] if METHODS[method].needs_pairs
              else ["data.source=imagefolder", f"data.path={Path(data) / 'winners'}"])
    return [
        *budget.pretrain, f"model.path={base}", f"model.motion_adapter={adapter_folder(base)}",
        *source, f"data.num_frames={budget.video.num_frames}", "data.frame_stride=1",
        f"train.iterations={budget.iterations}", f"train.updates_per_iteration={budget.updates_per_iteration}",
        f"train.batch_size={budget.batch_size}", f"sampler.steps={budget.sampler_steps}",
        f"sampler.guidance={budget.guidance}", "train.train_motion_only=true", "checkpoints.every=0",
        "log.report_to=none", "log.progress=false"]


def video_prompts(budget: VideoBudget) -> list[str]:
    """The evaluation prompts: every (digit, direction) cell of digits 0..eval_digits−1, digit-major."""
    return all_video_prompts(range(budget.eval_digits))
