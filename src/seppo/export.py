"""Write the final model θ_K in diffusers layout, atomically (`final.tmp` → `final`).

- full fine-tune: every component folder of the base (text encoders, tokenizers, scheduler,
  VAE, `model_index.json`) plus the trained `unet/` from `save_pretrained`, so each folder
  loads with plain `from_pretrained` and an SD/SDXL folder with `DiffusionPipeline`;
  the scheduler config names the prediction type trained on (`model.prediction_type`);
  a video model saves its trained motion modules as `motion_adapter/` beside the image UNet;
- LoRA: `pytorch_lora_weights.safetensors` in diffusers' format with the adapter's LoraConfig
  (rank, alpha, targets) in its metadata, so `pipe.load_lora_weights(final)` reproduces the
  trained model, plus `seppo_base.json` naming the base, so `seppo sample RUN` resolves it;
- both: `README.md`, a Hugging Face model card (seppo.card).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils import convert_state_dict_to_diffusers
from peft.utils import get_peft_model_state_dict

from seppo.backbone import POLICY_ADAPTER, Backbone
from seppo.card import write_model_card


def export_final(backbone: Backbone, base: Path, run_dir: Path, cfg, *, data_summary: dict | None = None,
                 unet: torch.nn.Module | None = None) -> Path:
    """`unet`: the trained UNet to write when it is not `backbone.unet` (an FSDP run's, gathered
    whole into an unsharded module: seppo.train)."""
    final, tmp = run_dir / "final", run_dir / "final.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unet = backbone.unet if unet is None else unet
    if cfg.train.mode == "lora":
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=POLICY_ADAPTER))
        # The pipelines' own writer (the mixin they inherit it from: importing a pipeline pulls in image processors).
        # The adapter's LoraConfig goes into the file's metadata, so `load_lora_weights` applies the
        # trained scale lora_alpha / rank (without it diffusers assumes alpha = rank).
        StableDiffusionLoraLoaderMixin.save_lora_weights(str(tmp), unet_lora_layers=layers, safe_serialization=True,
                                                         unet_lora_adapter_metadata=unet.peft_config[POLICY_ADAPTER].to_dict())
        (tmp / "seppo_base.json").write_text(json.dumps(
            {"base": os.path.abspath(base), "motion_adapter": os.path.abspath(cfg.model.motion_adapter) if cfg.model.motion_adapter else "",
             "prediction_type": backbone.prediction_type}))
        (tmp / "seppo_lora.json").write_text(json.dumps(
            {"rank": cfg.train.lora_rank, "alpha": cfg.train.lora_alpha, "targets": list(cfg.train.lora_targets)}))
    else:
        for item in Path(base).iterdir():
            if item.name in ("unet",) or item.name.startswith("."):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        _set_prediction_type(tmp / "scheduler" / "scheduler_config.json", backbone.prediction_type)
        if backbone.is_video:
            shutil.copytree(Path(base) / "unet", tmp / "unet")
            unet.save_motion_modules(str(tmp / "motion_adapter"))
        else:
            unet.save_pretrained(tmp / "unet")
    write_model_card(tmp, cfg, base, final, lora=cfg.train.mode == "lora", video=backbone.is_video, data_summary=data_summary)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def _set_prediction_type(config_file: Path, prediction_type: str) -> None:
    """The copied scheduler config names the type trained on (a `model.prediction_type` override),
    keeping the scheduler's own class and settings."""
    config = json.loads(config_file.read_text())
    if config.get("prediction_type") != prediction_type:
        config_file.write_text(json.dumps({**config, "prediction_type": prediction_type}, indent=2))
