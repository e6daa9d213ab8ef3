"""Configs: nested dataclasses, YAML files and dotted command-line overrides.

`load_config("configs/x.yaml", ["train.lr=1e-5", "method=sft"])` reads the YAML, applies
the overrides, resolves the method (seppo.methods: the fields a method fixes are written
into the config, so `RUN/config.yaml` records what ran), checks every key and type, and
checks the combination (a `dpo` run needs pairs; a field the method fixes may not be given
another value, in the file or on the command line, even its default). Every problem is a
`ConfigError` naming the key. Each field is documented once, here, with its unit and whether
it is per process or global. "(ours)" marks a choice the SePPO paper does not state.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seppo.errors import ConfigError
from seppo.methods import FLIPPERS, METHODS, REDRAWS, REFERENCES

PAIR_GENERATORS = ("base", "strong")  # the embedded world's generators (seppo.embedded.pretrain)

DATA_SOURCES = ("embedded", "pickapic", "imagefolder", "disk")  # seppo.data.sources.SOURCES reads each
REPORT_TO = ("tensorboard", "wandb", "all", "none")  # log.report_to: accelerate's tracker names (seppo.trackers)


@dataclass
class ModelConfig:
    # A diffusers folder (SD-1.x/2.x, SDXL, or the embedded tiny model), or "embedded:digits"
    # for the embedded base, pretrained and cached under $SEPPO_CACHE on first use.
    path: str = "embedded:digits"
    # A single .safetensors/.ckpt UNet file loaded with from_single_file, configured by `path`.
    single_file: str = ""
    # An AnimateDiff MotionAdapter folder; turns the image model into a video model.
    motion_adapter: str = ""
    # "auto" reads the scheduler config; "epsilon" or "v_prediction" override it.
    prediction_type: str = "auto"


@dataclass
class TinyUNetConfig:
    """Geometry of the embedded tiny base model (only used by `seppo pretrain`)."""

    sample_size: int = 16  # pixels per side
    channels: int = 1  # greyscale digits
    block_out_channels: list = field(default_factory=lambda: [16, 32])
    layers_per_block: int = 1
    cross_attention_dim: int = 32
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000


@dataclass
class PretrainConfig:
    steps: int = 1200  # optimizer steps
    batch_size: int = 64  # per process
    lr: float = 2e-3
    empty_prompt_prob: float = 0.15  # prompt dropout, so "" is the unconditional prompt for guidance
    # Extra steps for the "stronger" generator used to build Pick-a-Digit (Pick-a-Pic's
    # generators are mostly stronger than the base).
    strong_extra_steps: int = 1800
    # Pick-a-Digit, the embedded preference data (built once, cached under $SEPPO_CACHE):
    pairs_per_digit: int = 100  # prompts per digit; each gets two images from the generators
    generator_steps: int = 10  # DDIM steps the generators use
    generator_guidance: float = 3.0
    # Which generators draw the two sides of a pair ("base", "strong"); Pick-a-Pic's images come
    # from models other than SD-1.5 (ours: the base) - see benchmarks/world-calibration.
    pair_generators: list = field(default_factory=lambda: list(PAIR_GENERATORS))
    # The learned preference judge's own pairs (split "judge": noise the training pairs never use),
    # prompts per digit; a fixed share is held out for its agreement with the annotator.
    judge_pairs_per_digit: int = 300
    unet: TinyUNetConfig = field(default_factory=TinyUNetConfig)


@dataclass
class DataConfig:
    # Where winners come from: "embedded" (Pick-a-Digit, built on first use), "pickapic"
    # (parquet shards: file, folder or glob), "imagefolder" (metadata.jsonl), "disk" (datasets.save_to_disk).
    source: str = "embedded"
    path: str = ""
    caption_column: str = "caption"
    image_column: str = "image"
    loser_column: str = ""  # "disk" source: the column holding losers (needed by method dpo)
    resolution: int = 16  # pixels per side after resize and crop
    crop: str = "center"  # "center" or "random"; cached training uses center crops
    hflip: bool = False  # random horizontal flip (Diffusion-DPO recipe: on); digits: off, a flip changes them
    empty_prompt_prob: float = 0.0  # prompt dropout during alignment (paper: 0; Diffusion-DPO: 0.2)
    min_size: int = 8  # images smaller than this on a side are bad records
    on_bad_record: str = "error"  # "error" stops at the first; "skip" counts and skips
    max_bad_fraction: float = 0.01  # with "skip": stop once more than this share is bad
    limit: int = 0  # use only the first N usable records (0 = all)
    num_frames: int = 8  # video sources: frames per clip
    frame_stride: int = 1  # video sources: take every n-th frame


@dataclass
class SamplerConfig:
    """How reference samples x^ref are generated (ours: the paper does not say)."""

    steps: int = 8  # DDIM steps (SD scale: 20)
    guidance: float = 3.0  # classifier-free guidance scale (SD scale: 7.5)
    eta: float = 0.0  # DDIM η: 0 is deterministic given the initial noise
    # (ours) A folder where reference samples are kept by content (seppo.shared_samples): runs
    # that draw the same reference for the same batch, seed and update compute them once, bit
    # for bit the same. `seppo benchmark` sets it for its runs; empty: off.
    share_dir: str = ""


@dataclass
class TrainConfig:
    iterations: int = 5  # K: checkpoints appended to the pool; the run is K·U updates
    updates_per_iteration: int = 20  # U: optimizer updates per iteration
    batch_size: int = 32  # prompts per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer update
    lr: float = 1e-4  # peak learning rate (Diffusion-DPO SD-1.5: 1e-8 × effective batch)
    lr_warmup_steps: int = 0  # linear warm-up, in updates
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0  # 0 disables clipping
    mode: str = "full"  # "full" fine-tunes the UNet; "lora" trains peft adapters on it
    lora_rank: int = 8
    lora_alpha: float = 8.0
    lora_targets: list = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    # video: train the motion modules, base image weights frozen (with mode "lora": adapters on the
    # motion modules' projections only, as AnimateDiff's motion LoRAs)
    train_motion_only: bool = True
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (through accelerate)
    gradient_checkpointing: bool = False
    # torch.compile (opt-in): "reference" compiles the frozen reference UNet that generates
    # reference samples (1.5x faster generation on an H200, ~50 s to compile, benchmarks/);
    # "all" also the policy UNet. A LoRA UNet serves both roles and is compiled whole.
    compile: str = "none"
    use_8bit_adam: bool = False  # needs bitsandbytes
    ema_decay: float = 0.0  # > 0 keeps an EMA of the trainable weights (diffusers' EMAModel); the export uses it
    max_bad_steps: int = 5  # consecutive non-finite updates before the run stops
    # Multi-process runs: seconds a collective (gradient all-reduce, barrier) waits for a peer
    # before this process stops (exit 2), instead of the backend's 30 minutes. Also the bound
    # within which a worker whose launcher died exits. Same value on every process.
    collective_timeout: int = 300
    # Multi-process runs (ours): "fsdp" shards the policy UNet's weights, gradients and optimizer
    # state over the processes (torch FSDP2 `fully_shard`, per block and at the root) instead of
    # replicating them (data parallel, "none"); ignored by a single process. Full mode only.
    sharding: str = "none"


@dataclass
class PoolConfig:
    storage: str = "cpu"  # where full-weight snapshots live: "cpu" or "disk" (LoRA snapshots: always cpu)


@dataclass
class CheckpointConfig:
    every: int = 50  # updates between checkpoints (0: only at the end)
    keep_last: int = 2  # complete checkpoints kept; the newest is never deleted


@dataclass
class LogConfig:
    every: int = 1  # updates between metric rows (RUN/metrics.jsonl, the local record, always written)
    # Trackers through accelerate (seppo.trackers), as in diffusers' training scripts:
    # "tensorboard" (RUN/tensorboard/<project>/), "wandb" (optional: pip install "seppo[wandb]";
    # offline with WANDB_MODE=offline), "all" (every tracker accelerate finds installed) or "none".
    # Replaces `tensorboard: true|false`, still read as report_to tensorboard|none.
    report_to: str = "tensorboard"
    project: str = "seppo"  # the trackers' project: the wandb project, the TensorBoard subfolder
    progress: bool = True


@dataclass
class Config:
    method: str = "seppo"  # seppo | sft | dpo | spin | ditto (DESIGN.md §1; seppo.methods fixes the fields below)
    # The next three are null where the method has no such thing (sft: all three; dpo: flipper).
    flipper: str | None = "sign"  # sign | indicator | none (s = 1); seppo's choice, fixed by the other methods
    reference: str | None = "uniform"  # uniform | initial | latest: which pool entry is π_ref
    redraw: str | None = "iteration"  # re-draw the reference every "iteration" (ours) or every "update"
    flipper_draws: int = 1  # (t, ε) draws whose mean anchor gap decides s (paper: 1; more cost forward passes)
    beta: float = 5000.0  # β (Diffusion-DPO SD-1.5 convention; ours for SePPO)
    seed: int = 0
    output_dir: str = "runs/seppo"
    resume: bool = False  # continue from the latest complete checkpoint in output_dir
    overwrite: bool = False  # allow writing into an output_dir that holds another run
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    @property
    def needs_pairs(self) -> bool:
        return METHODS[self.method].needs_pairs

    @property
    def total_updates(self) -> int:
        return self.train.iterations * self.train.updates_per_iteration


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] = (), *, check: bool = True) -> Config:
    """Read a YAML config (or the defaults), apply `key.sub=value` overrides, validate."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        _set_dotted(raw, key.strip(), yaml.safe_load(value) if value.strip() else "")
    _renamed_keys(raw)
    conflicts = resolve_method(raw)
    config = _build(Config, raw, prefix="")
    if check:
        if conflicts:
            raise ConfigError(conflicts[0])
        validate(config)
    return config


def resolve_method(raw: dict) -> list[str]:
    """Write the fields the method fixes into `raw` (seppo.methods.METHODS); return one message
    per field the file or the command line gave another value, default or not."""
    method = raw.get("method", Config.method)
    if not isinstance(method, str) or method not in METHODS:
        return []  # validate() names the bad method
    conflicts = []
    for key, want in METHODS[method].fixed().items():
        if key in raw and raw[key] != want:
            if want is None:
                why = "uses no reference model" if METHODS[method].second_half is None else "has no flipper"
                conflicts.append(f"config key {key}: method {method} {why}, so {key} does not apply "
                                 f"(got {raw[key]!r}; leave it out)")
            else:
                conflicts.append(f"config key {key}: method {method} is a preset with {key} {want}, got {raw[key]!r}")
        raw[key] = want
    return conflicts


def _renamed_keys(raw: dict) -> None:
    """Read keys that were renamed: `log.tensorboard: true|false` is `log.report_to: tensorboard|none`
    (configs and RUN/config.yaml files written before the trackers went through accelerate)."""
    log = raw.get("log")
    if isinstance(log, dict) and "tensorboard" in log:
        old = log.pop("tensorboard")
        if not isinstance(old, bool):
            raise ConfigError(f"config key log.tensorboard: expected true or false, got {old!r} (renamed: log.report_to)")
        new = "tensorboard" if old else "none"
        if log.setdefault("report_to", new) != new:
            raise ConfigError(f"config key log.tensorboard: {old} contradicts log.report_to {log['report_to']!r} "
                              "(log.tensorboard is the old name; give log.report_to only)")


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


def _build(cls, raw: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown config key: {prefix}{key}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        kwargs[f.name] = _coerce(hints[f.name], raw[f.name], f"{prefix}{f.name}")
    return cls(**kwargs)


def _coerce(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key}: expected a section (mapping), got {value!r}")
        return _build(hint, value, prefix=f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key}: expected a string, got {value!r}")
    if hint is list or typing.get_origin(hint) is list:
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        raise ConfigError(f"config key {key}: expected a list, got {value!r}")
    if isinstance(hint, types.UnionType):  # X | None: null, or an X
        inner = [h for h in typing.get_args(hint) if h is not type(None)]
        return None if value is None or len(inner) != 1 else _coerce(inner[0], value, key)
    raise TypeError(f"config key {key}: unsupported field type {hint}")


# --------------------------------------------------------------------------- validation


def _choice(key: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"config key {key}: {value!r} is not one of {', '.join(allowed)}")


def _positive(key: str, value, *, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"config key {key}: must be {'≥ 0' if zero_ok else '> 0'}, got {value}")


def validate(c: Config) -> None:
    """Check choices, ranges and combinations of a resolved config; raise ConfigError naming the key."""
    _choice("method", c.method, tuple(METHODS))
    fixed = METHODS[c.method].fixed()  # resolve_method has set these
    for key, allowed in (("flipper", FLIPPERS), ("reference", REFERENCES), ("redraw", REDRAWS)):
        if key not in fixed:
            _choice(key, getattr(c, key), allowed)
    _choice("data.source", c.data.source, DATA_SOURCES)
    _choice("data.crop", c.data.crop, ("center", "random"))
    _choice("data.on_bad_record", c.data.on_bad_record, ("error", "skip"))
    _choice("train.mode", c.train.mode, ("full", "lora"))
    _choice("train.mixed_precision", c.train.mixed_precision, ("no", "fp16", "bf16"))
    _choice("pool.storage", c.pool.storage, ("cpu", "disk"))
    _choice("train.sharding", c.train.sharding, ("none", "fsdp"))
    # fsdp leaves out LoRA (adapters of a few MB: nothing worth sharding), and fp16's gradient
    # scaler and 8-bit Adam, which have not run on sharded (DTensor) gradients.
    for unsupported, on in (("train.mode=lora", c.train.mode == "lora"), ("train.use_8bit_adam", c.train.use_8bit_adam),
                            ("train.mixed_precision=fp16", c.train.mixed_precision == "fp16")):
        if c.train.sharding == "fsdp" and on:
            raise ConfigError(f"config key train.sharding: fsdp does not support {unsupported}")
    _choice("train.compile", c.train.compile, ("none", "reference", "all"))
    _choice("model.prediction_type", c.model.prediction_type, ("auto", "epsilon", "v_prediction"))
    _choice("log.report_to", c.log.report_to, REPORT_TO)
    if c.log.report_to == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError('config key log.report_to: wandb is not installed (pip install "seppo[wandb]"), '
                          "or choose tensorboard or none")
    _positive("train.iterations", c.train.iterations)
    _positive("train.updates_per_iteration", c.train.updates_per_iteration)
    _positive("train.batch_size", c.train.batch_size)
    _positive("train.grad_accum", c.train.grad_accum)
    _positive("train.collective_timeout", c.train.collective_timeout)
    _positive("train.lr", c.train.lr)
    _positive("train.lr_warmup_steps", c.train.lr_warmup_steps, zero_ok=True)
    _positive("train.max_bad_steps", c.train.max_bad_steps)
    _positive("beta", c.beta)
    _positive("flipper_draws", c.flipper_draws)
    if not 0 <= c.train.ema_decay < 1:
        raise ConfigError(f"config key train.ema_decay: must be in [0, 1), got {c.train.ema_decay}")
    _positive("sampler.steps", c.sampler.steps)
    _positive("sampler.guidance", c.sampler.guidance, zero_ok=True)
    _positive("sampler.eta", c.sampler.eta, zero_ok=True)
    _positive("data.resolution", c.data.resolution)
    _positive("checkpoints.every", c.checkpoints.every, zero_ok=True)
    _positive("checkpoints.keep_last", c.checkpoints.keep_last)
    _positive("pretrain.steps", c.pretrain.steps)
    if not c.pretrain.pair_generators:
        raise ConfigError(f"config key pretrain.pair_generators: name at least one of {', '.join(PAIR_GENERATORS)}")
    for name in c.pretrain.pair_generators:
        _choice("pretrain.pair_generators", name, PAIR_GENERATORS)
    for key, p in (("data.empty_prompt_prob", c.data.empty_prompt_prob), ("data.max_bad_fraction", c.data.max_bad_fraction)):
        if not 0 <= p <= 1:
            raise ConfigError(f"config key {key}: must be between 0 and 1, got {p}")
    if c.data.source != "embedded" and not c.data.path:
        raise ConfigError(f"config key data.path: required for data.source {c.data.source}")
    if c.needs_pairs and (c.data.source == "imagefolder" or (c.data.source == "disk" and not c.data.loser_column)):
        raise ConfigError(f"config key method: {c.method} needs preference pairs, but data.source {c.data.source} holds winners only")


def to_dict(c: Config) -> dict:
    return dataclasses.asdict(c)


def save_config(c: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(c), sort_keys=False))
