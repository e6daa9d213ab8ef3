"""The resolved config as a reader needs it: only the fields the run's method uses, each
with where its value came from. The report's config section and the model card show it.

| origin    | meaning                                                                   |
|-----------|---------------------------------------------------------------------------|
| `preset`  | fixed by a preset of another method's loss (`spin`, `ditto`: seppo.methods) |
| `method`  | fixed by the method itself (`dpo`: reference initial)                     |
| `set`     | differs from the default: given in the config file or on the command line |
| `default` | the dataclass default (seppo.config)                                      |

A field is left out, with the reason, where the run cannot have used it: a null field (the
method has no such thing: seppo.methods), the reference sampler and β without reference
samples or losers, LoRA settings of a full fine-tune, video settings of an image model,
column names of sources that have none, the embedded world's pretraining of a model that
is not the embedded base, and empty strings (not set).
"""

from __future__ import annotations

from dataclasses import dataclass

from seppo.config import Config, to_dict
from seppo.methods import METHODS


@dataclass(frozen=True)
class Field:
    key: str  # dotted: "train.lr"
    value: object
    origin: str  # preset | method | set | default
    default: object = None  # the dataclass default, where origin is "set"

    @property
    def note(self) -> str:
        """The origin in words, for a table cell."""
        return {"preset": "set by the preset", "method": "set by the method",
                "set": f"config or command line (default {self.default!r})", "default": "default"}[self.origin]


def flatten(node: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def is_preset(method: str) -> bool:
    """`spin` and `ditto` are presets: another method's loss with fields fixed."""
    return METHODS[method].loss != method


def unused_fields(cfg: Config) -> dict[str, str]:
    """{dotted key or section prefix ending in ".": why this run did not use it}."""
    method = METHODS[cfg.method]
    why: dict[str, str] = {}
    if method.second_half is None:
        for key in ("reference", "flipper", "redraw", "flipper_draws", "beta", "sampler."):
            why[key] = f"{cfg.method} uses no reference model"
    elif method.second_half == "loser":
        for key in ("flipper", "flipper_draws", "sampler."):
            why[key] = f"{cfg.method} takes its second half from the data's losers"
    if cfg.reference == "initial" and "redraw" not in why:
        why["redraw"] = "the reference is always θ_0"
    if cfg.flipper in (None, "none") and "flipper_draws" not in why:
        why["flipper_draws"] = "no flipper decision to average"
    if cfg.train.mode != "lora":
        for key in ("train.lora_rank", "train.lora_alpha", "train.lora_targets"):
            why[key] = "a full fine-tune"
    if not cfg.model.motion_adapter:
        for key in ("train.train_motion_only", "data.num_frames", "data.frame_stride"):
            why[key] = "an image model"
    if cfg.data.source != "disk":
        for key in ("data.caption_column", "data.image_column", "data.loser_column"):
            why[key] = f"data.source {cfg.data.source} names its own columns"
    if cfg.data.on_bad_record == "error":
        why["data.max_bad_fraction"] = "bad records stop the run (data.on_bad_record error)"
    if cfg.model.path != "embedded:digits" and cfg.data.source != "embedded":
        why["pretrain."] = "the model is not the embedded base"
    for key, value in flatten(to_dict(cfg)).items():
        if value is None and key not in why:
            why[key] = f"does not apply to {cfg.method}"
        elif value == "" and key not in why:
            why[key] = "not set"
    return why


def view(cfg: Config) -> tuple[list[Field], dict[str, str]]:
    """(the fields the run used, in the config's order; {left-out key: why})."""
    fixed = METHODS[cfg.method].fixed()
    defaults = flatten(to_dict(Config()))
    why = unused_fields(cfg)
    shown = []
    for key, value in flatten(to_dict(cfg)).items():
        if key in why or any(p.endswith(".") and key.startswith(p) for p in why):
            continue
        if key in fixed:
            origin = "preset" if is_preset(cfg.method) else "method"
        elif key in defaults and value != defaults[key]:
            origin = "set"
        else:
            origin = "default"
        shown.append(Field(key, value, origin, defaults.get(key) if origin == "set" else None))
    return shown, why
