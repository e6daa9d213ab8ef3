"""`RUN/final/README.md`: a Hugging Face model card, YAML metadata and markdown, made with
huggingface_hub's `ModelCard` and `ModelCardData` as diffusers' training scripts make theirs.

| section           | holds                                                                    |
|-------------------|--------------------------------------------------------------------------|
| metadata          | `base_model`, `library_name: diffusers`, `pipeline_tag`, tags (`seppo`, the method, `lora`), and `model-index` once evaluated |
| Method            | the method and every setting it used, with where each came from (seppo.config_view) |
| Data              | the data source and what a pass over it saw (records used, ties dropped, bad records) |
| Evaluation        | the latest evaluation that included this model, or how to run one       |
| How to load       | diffusers code for this export: a full model or a LoRA, image or video  |

The export writes the card inside `final.tmp`, so it appears with the weights (seppo.export).
`add_evaluation` replaces the Evaluation section and the `model-index`; `seppo eval`, the
demos and the benchmark call it for every run they evaluate (seppo.api.evaluate_models).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import EvalResult as HubEvalResult
from huggingface_hub import ModelCard, ModelCardData

from seppo import __version__
from seppo.config import Config
from seppo.config_view import view
from seppo.methods import METHODS

EVAL_START, EVAL_END = "<!-- seppo:evaluation:start -->", "<!-- seppo:evaluation:end -->"
NOT_EVALUATED = ("Not evaluated yet. `seppo eval RUN --prompts SET --judges NAMES` scores this model with shared "
                 "noise keys and writes its table here.")
METHOD_WORDS = {
    "seppo": "SePPO: winners only; previous checkpoints are the references, their samples stand in for losers, "
             "and the anchor-based flipper decides whether each is pushed away or learned from",
    "sft": "supervised fine-tuning on the winners",
    "dpo": "Diffusion-DPO on preference pairs, against the frozen initial model",
    "spin": "SPIN-Diffusion-style self-play: SePPO's loss with the latest checkpoint as reference and no flipper",
    "ditto": "DITTO-style self-play: SePPO's loss with the initial model as reference and no flipper",
}


def model_card(cfg: Config, base: Path, final: Path, *, lora: bool, video: bool, data_summary: dict | None = None) -> ModelCard:
    """The card of the export at `final` (its eventual path), trained from `base`."""
    task = "text-to-video" if video else "text-to-image"
    data = ModelCardData(base_model=cfg.model.path, library_name="diffusers", pipeline_tag=task,
                         tags=["seppo", "diffusers", "diffusers-training", task, f"seppo-{cfg.method}",
                               *(["lora"] if lora else [])])
    shown, hidden = view(cfg)
    rows = "\n".join(f"| `{f.key}` | `{f.value}` | {f.note} |" for f in shown
                     if not f.key.startswith(("log.", "checkpoints.", "pretrain.")) and f.key not in ("output_dir", "resume", "overwrite"))
    body = f"""
# {cfg.method} on {Path(cfg.model.path).name or cfg.model.path}

A {task} diffusion model aligned with human preference by seppo {__version__}, method
`{cfg.method}`: {METHOD_WORDS.get(cfg.method, cfg.method)}. Base model: `{cfg.model.path}` (`{base}`).
{"Trained weights: LoRA adapters." if lora else "Trained weights: the full " + ("motion modules." if video and cfg.train.train_motion_only else "UNet.")}

## Method

{cfg.train.iterations} iterations × {cfg.train.updates_per_iteration} updates (K × U), batch {cfg.train.batch_size} per process
× {cfg.train.grad_accum} accumulation steps. The fields this method uses (not used: {", ".join(f"`{k}`" for k in hidden) or "none"}):

| field | value | set by |
|---|---|---|
{rows}

## Data

{_data_words(cfg, data_summary)}

## Evaluation

{EVAL_START}
{NOT_EVALUATED}
{EVAL_END}

## How to load

{_how_to_load(cfg, base, final, lora=lora, video=video)}
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(folder: Path, cfg: Config, base: Path, final: Path, *, lora: bool, video: bool,
                     data_summary: dict | None = None) -> Path:
    """Write `folder/README.md` (the export's temporary folder, renamed to `final` after)."""
    path = Path(folder) / "README.md"
    model_card(cfg, base, final, lora=lora, video=video, data_summary=data_summary).save(path)
    return path


def _data_words(cfg: Config, summary: dict | None) -> str:
    source = {"embedded": "the embedded Pick-a-Digit pairs (built by seppo)", "pickapic": "Pick-a-Pic-style parquet",
              "imagefolder": "an image folder with metadata.jsonl", "disk": "a datasets dataset saved on disk"}
    where = f" at `{cfg.data.path}`" if cfg.data.path else ""
    kind = "preference pairs (winner and loser)" if METHODS[cfg.method].needs_pairs else "winners only"
    text = f"Source: {source.get(cfg.data.source, cfg.data.source)}{where}; used as {kind}, at {cfg.data.resolution} px."
    if summary:
        text += (f" A pass over it saw {summary['seen']} records and used {summary['used']}: {summary['ties_dropped']} "
                 f"ties dropped, {summary['bad']} bad records, {summary['empty_captions']} empty captions.")
    return text


def _how_to_load(cfg: Config, base: Path, final: Path, *, lora: bool, video: bool) -> str:
    final, base = os.path.abspath(final), os.path.abspath(base)
    pipeline = (Path(base) / "model_index.json").is_file()
    if pipeline and not lora and not video:
        code = f"""from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{final}")
image = pipe("a photo of a cat").images[0]"""
    elif pipeline and lora and not video:
        code = f"""from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{base}")
pipe.load_lora_weights("{final}")"""
    elif pipeline and video:
        code = f"""from diffusers import AnimateDiffPipeline, MotionAdapter

adapter = MotionAdapter.from_pretrained("{final}/motion_adapter")
pipe = AnimateDiffPipeline.from_pretrained("{base if lora else final}", motion_adapter=adapter)"""
        if lora:
            code += f'\npipe.load_lora_weights("{final}")'
    else:  # a folder of components without a pipeline (the embedded models): load them one by one
        unet_from = base if lora else final
        code = f"""from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

unet = UNet2DConditionModel.from_pretrained("{unet_from}", subfolder="unet")
text_encoder = CLIPTextModel.from_pretrained("{base if lora else final}", subfolder="text_encoder")
tokenizer = CLIPTokenizer.from_pretrained("{base if lora else final}", subfolder="tokenizer")
scheduler = DDIMScheduler.from_pretrained("{base if lora else final}", subfolder="scheduler")"""
        if lora:
            code += f'\nunet.load_lora_adapter("{final}", prefix="unet")'
        if video:
            code = code.replace("from diffusers import ", "from diffusers import MotionAdapter, ", 1)
            code += f'\nmotion_adapter = MotionAdapter.from_pretrained("{final}/motion_adapter")'
    run = Path(final).parent
    return (f"```python\n{code}\n```\n\nWith seppo: `seppo sample {run} --prompt \"...\" --out grid.png`, "
            f"`seppo eval {run} ...`.")


def is_seppo_card(folder: Path) -> bool:
    path = Path(folder) / "README.md"
    return path.is_file() and "seppo" in (ModelCard.load(path).data.tags or [])


def add_evaluation(folder: Path, *, name: str, table: str, summary: list[dict], prompts: str) -> Path:
    """Replace the Evaluation section of `folder/README.md` with `table` (markdown) and its
    `model-index` with this model's (`name`'s) mean score per judge."""
    path = Path(folder) / "README.md"
    card = ModelCard.load(path)
    task = card.data.pipeline_tag or "text-to-image"
    card.data.model_name = card.data.model_name or Path(folder).parent.name
    card.data.eval_results = [
        HubEvalResult(task_type=task, dataset_type="seppo-prompts", dataset_name=prompts, metric_type=row["judge"],
                      metric_name=f"{row['judge']} (mean; 95% interval {row['lo']:.4g} to {row['hi']:.4g})",
                      metric_value=round(float(row["mean"]), 6))
        for row in summary if row["model"] == name]
    section = f"{EVAL_START}\nThis model is `{name}` below.\n\n{table.strip()}\n{EVAL_END}"
    pattern = re.compile(re.escape(EVAL_START) + ".*?" + re.escape(EVAL_END), re.S)
    card.text = pattern.sub(lambda _: section, card.text)
    card.save(path)
    return path
