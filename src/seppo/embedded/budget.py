"""The embedded default's config and budgets, shared by `seppo demo`, `seppo demo --video`,
`seppo ablate` and the tests.

| name            | what                                                                        |
|-----------------|-----------------------------------------------------------------------------|
| `DEMO_CONFIG`   | the packaged copy of `configs/digits-seppo.yaml`                            |
| `QUICK_WORLD`   | a toy embedded world: base and strong model, Pick-a-Digit pairs (seconds)   |
| `QUICK`         | `QUICK_WORLD` plus a seconds-long run: `--quick`, and the tests' runs       |
| `EVAL_STEPS`, `EVAL_GUIDANCE` | the evaluation sampler of the image demo and the ablation grid |
| `IMAGE_UNIT`    | the bootstrap unit over ten prompts: every image (its noise key is shared by all models) |
| `SELECTED`, `selected_overrides` | each method's settings as `seppo benchmark` selected them on validation keys (`configs/selected.yaml`) |
| `IMAGE_JUDGES`  | the image world's judges, the selection judge first                          |
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import yaml

DEMO_CONFIG = Path(str(files("seppo") / "configs" / "digits.yaml"))
SELECTED = Path(str(files("seppo") / "configs" / "selected.yaml"))

QUICK_WORLD = ["pretrain.steps=30", "pretrain.strong_extra_steps=30", "pretrain.batch_size=16", "pretrain.pairs_per_digit=6",
               "pretrain.judge_pairs_per_digit=6", "pretrain.generator_steps=4"]
QUICK = [*QUICK_WORLD, "train.iterations=2", "train.updates_per_iteration=2", "train.batch_size=4", "sampler.steps=2",
         "checkpoints.every=0", "log.progress=false", "log.report_to=none"]

EVAL_STEPS, EVAL_GUIDANCE = 20, 3.0  # the paper evaluates at the pipeline's default steps
# Ten prompts are too few bootstrap units: every image is one.
IMAGE_UNIT = ("prompt_idx", "seed", "k")

# preference: the learned Bradley–Terry judge (Pick-a-Digit's PickScore, the selection judge);
# oracle: the annotator's own utility (the simulation's oracle, which real data lacks);
# digit: class correctness (the CLIP-score analogue); stroke: the annotator's stroke term.
IMAGE_JUDGES = ["preference", "oracle", "digit", "stroke"]


def selected_overrides(method: str, path: Path = SELECTED) -> list[str]:
    """`key=value` overrides of `method`'s selected settings; none for a method not tuned."""
    chosen = (yaml.safe_load(Path(path).read_text()) or {}).get(method, {})
    return [f"{key}={value}" for key, value in chosen.items()]
