"""The embedded video default, assembled: a tiny AnimateDiff-style base and Moving-Digits pairs.

"Our AnimateDiff": the cached image base ("our SD-1.5", `ensure_embedded_base`) plus a tiny
diffusers `MotionAdapter`, combined as diffusers does (`UNetMotionModel.from_unet2d`), trained
on real moving-digit clips (`seppo.embedded.clips.moving_clip`) with DDPM ε-loss and prompt
dropout, as in `seppo.pretrain`. The motion modules' output projections start at zero, as in
AnimateDiff, so before training the video model is the image model applied to each frame.

Unlike AnimateDiff, the image layers and the text encoder train with the motion modules: frozen,
they were trained on still digits and hand the temporal layers features with no direction in
them, and the base stayed at chance (benchmarks/video-base/README.md). The real AnimateDiff
path (`seppo train` with `model.motion_adapter`) is untouched. Further choices, each measured
there (ours, all of them):
- clips set off from the digit (`moving_clip`), 4 frames at 2 px, so that a direction and its
  opposite cover different places;
- a curriculum (`stages`): "left" and "up" only, then "right" joins, then "down"; trained on all
  four from the start the model learned the axis of motion and not its sign, and with "right"
  and "down" joining together it learned the horizontal sign only;
- half of each batch draws t from the top half of the noise range (`high_t_share`), where a
  clip's layout is decided, and the loss weighs x̂0's error there (`x0_weight_cap`);
- the motion modules' sinusoidal frame positions scaled ×4 (`position_scale`): at their
  default scale, next to the image features, the frames barely differ to attention.

The "strong" sibling (Pick-a-Pic's generators are mostly stronger than the base): the end of the
last stage, whose snapshot `base_at` updates in is the base (the image world's base and strong
sibling are snapshots of one run too).

Each model is a self-contained folder (`unet/` with the trained image layers, `text_encoder/`,
`tokenizer/`, `scheduler/`, `motion_adapter/`), so `load_for_sampling(folder)` and
`seppo train model.path=F model.motion_adapter=F/motion_adapter` both read it. Cached under
`$SEPPO_CACHE/video-<key>/` keyed by both configs; the shipped one is prebuilt
(`seppo.paths.from_prebuilt`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from seppo import paths, rng
from seppo.config import PretrainConfig
from seppo.embedded.clips import DIRECTIONS, NUM_FRAMES, SPEED, all_video_prompts, moving_clip
from seppo.embedded.digits import real_digits
from seppo.embedded.pairs import sampling_generator
from seppo.embedded.pretrain import cosine_lr, ddpm_update, ensure_embedded_base
from seppo.embedded.video_pairs import build_moving_digits_pairs

VIDEO_VERSION = "2"
# Motion pretraining draws from the seppo.rng streams under seed + this offset, so its draws
# (digit: "flip", direction: "reference", dropout, t, ε, the high-t share: "flipper_timestep")
# never repeat the image base's.
VIDEO_SEED_OFFSET = 1000


@dataclass
class VideoWorldConfig:
    """The embedded video world (ours). Steps are optimizer updates; batches are clips.

    Each stage has its own optimizer and cosine schedule, and draws its batches from keys
    0, 1, … of its own, as separate runs would."""

    # The curriculum: the directions the clips of each stage move, and each stage's updates. A
    # direction joins once the ones before it are learned; the base video model is a snapshot
    # `base_at` updates into the last stage, the strong sibling its end (as the image world's
    # base is a snapshot of the run whose end is its strong sibling).
    stages: tuple = (("left", "up"), ("left", "up", "right"), ("left", "right", "up", "down"))
    stage_steps: tuple = (800, 800, 1200)
    base_at: int = 600
    batch_size: int = 12  # clips per update (× num_frames frames)
    lr: float = 2e-3  # every stage's peak learning rate
    high_t_share: float = 0.5  # share of clips with t in the top half of the range
    x0_weight_cap: float = 20.0  # ε-error × min(1/SNR, this), at least 1
    position_scale: float = 4.0  # the motion modules' sinusoidal frame positions, scaled
    empty_prompt_prob: float = 0.15  # prompt dropout, so "" serves classifier-free guidance
    num_frames: int = NUM_FRAMES  # frames per clip
    speed: int = SPEED  # pixels per frame
    motion_heads: int = 2  # motion_num_attention_heads of the tiny MotionAdapter
    # "all": the image layers and the text encoder train with the motion modules; "motion": they
    # stay frozen, as in AnimateDiff (the world's first base, which stayed at chance)
    train_layers: str = "all"
    train_images: int = 0  # train on the first this many real digit images (0: all of them)
    # The video training's own draws and the motion modules' initialisation (the image base it
    # starts from is the seed of `ensure_video_base`). Seed 0 learned the vertical sign late and
    # missed the motion target; seeds 1 and 2 met it (benchmarks/video-base/README.md §000): the
    # shipped world is the first seed that meets the targets, chosen on the base's own scores
    # before any method trained on it.
    seed: int = 1
    # Moving-Digits preference data:
    prompts_per_cell: int = 5  # prompts per (digit, direction) cell
    pair_digits: int = 10  # cells use digits 0..pair_digits−1 × 4 directions (10: all 40 cells)
    generator_steps: int = 6  # DDIM steps the generators use
    generator_guidance: float = 3.0


# ---------------------------------------------------------------- the tiny motion adapter


def build_motion_adapter(pretrain: PretrainConfig, video: VideoWorldConfig, *, seed: int = 0):
    """A MotionAdapter matching the tiny image UNet, with zero-initialised output projections
    and its frame-position tables (saved buffers) scaled by `video.position_scale`."""
    u = pretrain.unet
    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=tuple(u.block_out_channels), motion_layers_per_block=u.layers_per_block,
                            motion_num_attention_heads=video.motion_heads, motion_norm_num_groups=u.norm_num_groups,
                            motion_max_seq_length=max(8, video.num_frames), use_motion_mid_block=True)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.zero_()
        for module in adapter.modules():
            if isinstance(module, SinusoidalPositionalEmbedding):
                module.pe.mul_(video.position_scale)
    return adapter


def _load_image_parts(folder: Path):
    return (UNet2DConditionModel.from_pretrained(folder / "unet"), CLIPTextModel.from_pretrained(folder / "text_encoder"),
            CLIPTokenizer.from_pretrained(folder / "tokenizer"), DDPMScheduler.from_pretrained(folder / "scheduler"))


def _save_video_model(image_folder: Path, unet_motion, text_encoder, out: Path, info: dict) -> Path:
    """The image folder's tokenizer and scheduler, the trained image layers and text encoder,
    and the motion modules, as one model folder."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(image_folder, out, ignore=shutil.ignore_patterns("pretrain.json"))
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    unet.load_state_dict({k: v for k, v in unet_motion.state_dict().items() if "motion_modules" not in k}, strict=True)
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    unet_motion.save_motion_modules(str(out / "motion_adapter"))
    (out / "video_pretrain.json").write_text(json.dumps(info, indent=1))
    return out


def pretrain_motion(pretrain: PretrainConfig, video: VideoWorldConfig, image: dict[str, Path], out: Path, *,
                    progress: bool = True) -> dict[str, Path]:
    """Train the video model on real moving-digit clips from the image base, in the stages of
    `VideoWorldConfig`; save the base video model `video.base_at` updates into the last stage and
    the strong one at its end."""
    if video.train_layers not in ("all", "motion"):
        raise ValueError(f"video.train_layers must be 'all' or 'motion', got {video.train_layers!r}")
    if len(video.stages) != len(video.stage_steps) or not 0 < video.base_at <= video.stage_steps[-1]:
        raise ValueError("video.stages and video.stage_steps must pair up, and 0 < video.base_at ≤ the last stage's steps")
    unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])
    model = UNetMotionModel.from_unet2d(unet, build_motion_adapter(pretrain, video, seed=video.seed))
    model.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if video.train_layers == "all":
        params = list(model.parameters()) + list(text_encoder.parameters())
    else:
        params = [p for n, p in model.named_parameters() if "motion_modules" in n]
    for p in params:
        p.requires_grad_(True)
    images, labels = real_digits("all")
    if video.train_images:
        images, labels = images[:video.train_images], labels[:video.train_images]
    prompts = all_video_prompts()  # prompt index = 4·d + direction; "" after them
    ids = tokenizer(prompts + [""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    frozen_text = None
    if video.train_layers == "motion":  # the text encoder does not train: embed the 41 prompts once
        with torch.no_grad():
            frozen_text = text_encoder(ids)[0]  # (41, L, D)
    f, vseed, t0, done = video.num_frames, video.seed + VIDEO_SEED_OFFSET, time.time(), 0
    bar = tqdm(total=sum(video.stage_steps), desc="pretrain video", disable=not progress, unit="step")
    model.train()
    saved: dict[str, Path] = {}
    for stage, (directions, steps) in enumerate(zip(video.stages, video.stage_steps), start=1):
        last = stage == len(video.stages)
        optimizer = torch.optim.AdamW(params, lr=video.lr, weight_decay=0.0)
        for step in range(steps):
            idx = list(range(step * video.batch_size, (step + 1) * video.batch_size))
            pick = rng.per_sample_randint(len(images), seed=vseed, stream="flip", key=step, indices=idx).tolist()
            way = rng.per_sample_randint(len(directions), seed=vseed, stream="reference", key=step, indices=idx).tolist()
            clips = np.stack([moving_clip(images[i], directions[w], f, video.speed) for i, w in zip(pick, way)])
            x0 = torch.from_numpy(clips).unsqueeze(1)  # (B, 1, F, 16, 16): channels before frames
            drop = rng.per_sample_rand(seed=vseed, stream="dropout", key=step, indices=idx) < video.empty_prompt_prob
            rows = [len(prompts) if dropped else 4 * int(labels[i]) + list(DIRECTIONS).index(directions[w])
                    for i, w, dropped in zip(pick, way, drop.tolist())]
            table = frozen_text if frozen_text is not None else text_encoder(ids)[0]  # (41, L, D)
            hidden = table[rows].repeat_interleave(f, dim=0)  # (B·F, L, D): text per frame
            loss = ddpm_update(model, optimizer, params, scheduler, x0, hidden, seed=vseed, step=step, indices=idx,
                               lr=cosine_lr(video.lr, step, steps, warmup=20), high_share=video.high_t_share,
                               x0_cap=video.x0_weight_cap)
            done += 1
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(stage=stage, loss=f"{loss:.4f}")
            for name, at in (("base", video.base_at), ("strong", steps)):
                if last and step + 1 == at:
                    info = {"video_steps": done, "seconds": round(time.time() - t0, 1), "final_loss": loss,
                            "video": dataclasses.asdict(video)}
                    saved[name] = _save_video_model(image["base"], model, text_encoder, out / name, info)
    bar.close()
    return saved


def video_key(pretrain: PretrainConfig, video: VideoWorldConfig, seed: int = 0) -> str:
    model_fields = {k: v for k, v in dataclasses.asdict(video).items()
                    if k not in ("prompts_per_cell", "generator_steps", "generator_guidance", "pair_digits")}
    return paths.short_hash({"v": VIDEO_VERSION, "image": paths.embedded_key(pretrain, seed), "video": model_fields,
                             "seed": seed})


def ensure_video_base(pretrain: PretrainConfig, video: VideoWorldConfig | None = None, *, seed: int = 0,
                      progress: bool = True) -> dict[str, Path]:
    """The cached base video model ("base") and its stronger sibling ("strong"), built once.

    `pretrain` is `cfg.pretrain` of a run's Config and `seed` its image base's seed (the image base
    it extends); the video training's own seed is `video.seed`."""
    video = video or VideoWorldConfig()
    root = paths.cache_root() / f"video-{video_key(pretrain, video, seed)}"
    folders = {name: root / name for name in ("base", "strong")}
    if all((f / "video_pretrain.json").exists() for f in folders.values()) or paths.from_prebuilt(root):
        return folders
    image = ensure_embedded_base(pretrain, seed=seed, progress=progress)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    steps = " + ".join(str(n) for n in video.stage_steps)
    print(f"pretraining the video model ({steps} steps; base at {video.base_at} of the last) into {root}")
    pretrain_motion(pretrain, video, image, tmp, progress=progress)
    if root.exists():
        shutil.rmtree(root)
    tmp.replace(root)
    return folders


def adapter_folder(model_folder: Path) -> Path:
    """The `motion_adapter/` of a video model folder (for `model.motion_adapter`)."""
    return Path(model_folder) / "motion_adapter"


# ---------------------------------------------------------------- Moving-Digits preference data


def ensure_moving_digits(pretrain: PretrainConfig, video: VideoWorldConfig | None = None, *, seed: int = 0,
                         progress: bool = True) -> tuple[Path, dict]:
    """The cached Moving-Digits folder (`train.parquet`, `winners/`) and its statistics."""
    video = video or VideoWorldConfig()
    folders = ensure_video_base(pretrain, video, seed=seed, progress=progress)
    root = paths.keyed("moving-digits", [video_key(pretrain, video, seed), video.prompts_per_cell, video.generator_steps,
                                         video.generator_guidance, video.pair_digits])
    stats_file = root / "stats.json"
    if stats_file.exists() or paths.from_prebuilt(root):
        return root, json.loads(stats_file.read_text())
    print(f"building Moving-Digits ({video.prompts_per_cell * video.pair_digits * 4} pairs from generators base and strong) into {root}")
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.time()
    with torch.no_grad():
        generators = {name: sampling_generator(folder, resolution=pretrain.unet.sample_size, steps=video.generator_steps,
                                               guidance=video.generator_guidance, num_frames=video.num_frames,
                                               batch_size=32)
                      for name, folder in folders.items()}
        stats = build_moving_digits_pairs(generators, prompts_per_cell=video.prompts_per_cell, seed=seed, out_dir=tmp,
                                          num_frames=video.num_frames, digits=range(video.pair_digits))
    stats["seconds"] = round(time.time() - t0, 1)
    (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
    if root.exists():
        shutil.rmtree(root)
    tmp.replace(root)
    return root, stats
