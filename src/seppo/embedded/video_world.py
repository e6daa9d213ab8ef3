"""The embedded video default, assembled: a tiny AnimateDiff-style base and Moving-Digits pairs.

"Our AnimateDiff": the cached image base ("our SD-1.5", `ensure_embedded_base`) plus a tiny
diffusers `MotionAdapter`, combined as diffusers does (`UNetMotionModel.from_unet2d`). Only the
motion modules train, on real moving-digit clips (`seppo.embedded.video.moving_clip`); the
image weights and the text encoder stay frozen. DDPM ε-loss with prompt dropout, as in
`seppo.pretrain`. The motion modules' output projections start at zero, as in AnimateDiff, so
before training the video model is the image model applied to each frame.

The "strong" sibling (Pick-a-Pic's generators are mostly stronger than the base): the strong
image base with the motion modules trained longer (`strong_extra_steps` more, same run). Motion
modules transfer across fine-tunes of one image base; AnimateDiff rests on that.

Each model is a self-contained folder: the image base's components plus `motion_adapter/`,
so `load_for_sampling(folder)` and `seppo train model.path=F model.motion_adapter=F/motion_adapter`
both read it. Cached under `$SEPPO_CACHE/video-<key>/` keyed by both configs.

Settings live in `VideoWorldConfig` (ours, all of them).
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
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from seppo import paths, rng
from seppo.config import PretrainConfig
from seppo.embedded.clips import DIRECTIONS, moving_clip, video_prompt
from seppo.embedded.digits import real_digits
from seppo.embedded.pairs import sampling_generator
from seppo.embedded.pretrain import cosine_lr, ddpm_update, ensure_embedded_base
from seppo.embedded.video_pairs import build_moving_digits_pairs

VIDEO_VERSION = "1"
# Motion pretraining draws from the seppo.rng streams under seed + this offset, so its draws
# (digit: "flip", direction: "reference", dropout, t, ε) never repeat the image base's.
VIDEO_SEED_OFFSET = 1000


@dataclass
class VideoWorldConfig:
    """The embedded video world (ours). Steps are optimizer updates; batches are clips."""

    steps: int = 150  # motion-module pretraining updates for the base video model
    strong_extra_steps: int = 150  # further updates for the "strong" generator's motion modules
    batch_size: int = 16  # clips per update (× num_frames frames)
    lr: float = 1e-3
    empty_prompt_prob: float = 0.15  # prompt dropout, so "" serves classifier-free guidance
    num_frames: int = 8  # frames per clip
    speed: int = 1  # pixels per frame
    motion_heads: int = 2  # motion_num_attention_heads of the tiny MotionAdapter
    # Moving-Digits preference data:
    prompts_per_cell: int = 5  # prompts per (digit, direction) cell
    pair_digits: int = 10  # cells use digits 0..pair_digits−1 × 4 directions (10: all 40 cells)
    generator_steps: int = 8  # DDIM steps the generators use
    generator_guidance: float = 3.0


# ---------------------------------------------------------------- the tiny motion adapter


def build_motion_adapter(pretrain: PretrainConfig, video: VideoWorldConfig, *, seed: int = 0):
    """A MotionAdapter matching the tiny image UNet, with zero-initialised output projections."""
    u = pretrain.unet
    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=tuple(u.block_out_channels), motion_layers_per_block=u.layers_per_block,
                            motion_num_attention_heads=video.motion_heads, motion_norm_num_groups=u.norm_num_groups,
                            motion_max_seq_length=max(8, video.num_frames), use_motion_mid_block=True)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.zero_()
    return adapter


def _load_image_parts(folder: Path):
    return (UNet2DConditionModel.from_pretrained(folder / "unet"), CLIPTextModel.from_pretrained(folder / "text_encoder"),
            CLIPTokenizer.from_pretrained(folder / "tokenizer"), DDPMScheduler.from_pretrained(folder / "scheduler"))


def _save_video_model(image_folder: Path, unet_motion, out: Path, info: dict) -> Path:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(image_folder, out)
    unet_motion.save_motion_modules(str(out / "motion_adapter"))
    (out / "video_pretrain.json").write_text(json.dumps(info, indent=1))
    return out


def pretrain_motion(pretrain: PretrainConfig, video: VideoWorldConfig, image: dict[str, Path], out: Path, *,
                    seed: int = 0, progress: bool = True) -> dict[str, Path]:
    """Train motion modules on real moving-digit clips over the frozen image base; save the base
    video model at `video.steps` and the strong one at `video.steps + video.strong_extra_steps`."""
    unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])
    model = UNetMotionModel.from_unet2d(unet, build_motion_adapter(pretrain, video, seed=seed))
    model.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if "motion_modules" in n]
    for p in params:
        p.requires_grad_(True)
    images, labels = real_digits("all")
    directions = list(DIRECTIONS)
    prompts = [video_prompt(d, r) for d in range(10) for r in directions]  # prompt index = 4·d + direction
    with torch.no_grad():  # the text encoder is frozen: embed the 40 prompts and "" once
        ids = tokenizer(prompts + [""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        table = text_encoder(ids)[0]  # (41, L, D)
    total = video.steps + video.strong_extra_steps
    optimizer = torch.optim.AdamW(params, lr=video.lr, weight_decay=0.0)
    model.train()
    saved: dict[str, Path] = {}
    f = video.num_frames
    bar = tqdm(range(total), desc="pretrain motion", disable=not progress, unit="step")
    t0 = time.time()
    vseed = seed + VIDEO_SEED_OFFSET
    for step in bar:
        idx = list(range(step * video.batch_size, (step + 1) * video.batch_size))
        pick = rng.per_sample_randint(len(images), seed=vseed, stream="flip", key=step, indices=idx).tolist()
        way = rng.per_sample_randint(len(directions), seed=vseed, stream="reference", key=step, indices=idx).tolist()
        clips = np.stack([moving_clip(images[i], directions[w], f, video.speed) for i, w in zip(pick, way)])
        x0 = torch.from_numpy(clips).unsqueeze(1)  # (B, 1, F, 16, 16): channels before frames
        drop = rng.per_sample_rand(seed=vseed, stream="dropout", key=step, indices=idx) < video.empty_prompt_prob
        rows = [len(prompts) if dropped else 4 * int(labels[i]) + w for i, w, dropped in zip(pick, way, drop.tolist())]
        hidden = table[rows].repeat_interleave(f, dim=0)  # (B·F, L, D): UNetMotionModel wants text per frame
        loss = ddpm_update(model, optimizer, params, scheduler, x0, hidden, seed=vseed, step=step, indices=idx,
                           lr=cosine_lr(video.lr, step, total, warmup=20))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")
        info = {"motion_steps": step + 1, "seconds": round(time.time() - t0, 1), "final_loss": loss,
                "video": dataclasses.asdict(video)}
        if step + 1 == video.steps:
            saved["base"] = _save_video_model(image["base"], model, out / "base", {**info, "image": "base"})
        if step + 1 == total:
            saved["strong"] = _save_video_model(image["strong"], model, out / "strong", {**info, "image": "strong"})
    return saved


def video_key(pretrain: PretrainConfig, video: VideoWorldConfig, seed: int = 0) -> str:
    model_fields = {k: v for k, v in dataclasses.asdict(video).items()
                    if k not in ("prompts_per_cell", "generator_steps", "generator_guidance", "pair_digits")}
    return paths.short_hash({"v": VIDEO_VERSION, "image": paths.embedded_key(pretrain, seed), "video": model_fields,
                             "seed": seed})


def ensure_video_base(pretrain: PretrainConfig, video: VideoWorldConfig | None = None, *, seed: int = 0,
                      progress: bool = True) -> dict[str, Path]:
    """The cached base video model ("base") and its stronger sibling ("strong"), built once.

    `pretrain` is `cfg.pretrain` of a run's Config (the image base it extends)."""
    video = video or VideoWorldConfig()
    root = paths.cache_root() / f"video-{video_key(pretrain, video, seed)}"
    folders = {name: root / name for name in ("base", "strong")}
    if all((f / "video_pretrain.json").exists() for f in folders.values()):
        return folders
    image = ensure_embedded_base(pretrain, seed=seed, progress=progress)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    print(f"pretraining motion modules ({video.steps} steps, strong: {video.steps + video.strong_extra_steps}) into {root}")
    pretrain_motion(pretrain, video, image, tmp, seed=seed, progress=progress)
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
    if stats_file.exists():
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
