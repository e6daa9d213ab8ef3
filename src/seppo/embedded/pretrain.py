"""`seppo pretrain`: train the embedded tiny base model from scratch ("our SD-1.5").

Nothing can be downloaded, so the embedded default brings its own base: a tiny
`UNet2DConditionModel` on 16×16 greyscale digits in [−1, 1], conditioned only through
cross-attention from a tiny `CLIPTextModel` (the Stable Diffusion path; no class
embeddings, which `UNetMotionModel` would drop and which leave no empty prompt for
guidance). DDPM training with a cosine schedule and prompt dropout, so the empty prompt
serves classifier-free guidance; sampling later uses DDIM with trailing spacing.

The result is a diffusers folder (`unet/`, `text_encoder/`, `tokenizer/`, `scheduler/`),
loaded like any other model. `ensure_embedded_base` caches it under $SEPPO_CACHE keyed by
its config (seppo.paths.embedded_models), with a second, longer-trained "strong" model used
to build Pick-a-Digit.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import diffusers
import numpy as np
import torch
import transformers
from diffusers import DDPMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

from seppo import paths, rng
from seppo.backbone import per_sample_error
from seppo.config import PretrainConfig
from seppo.embedded.digits import digit_prompt, real_digits
from seppo.embedded.tokenizer import build_text_encoder


def build_tiny_model(cfg: PretrainConfig, folder: Path, *, seed: int = 0):
    """Create the untrained tiny model and write it as a diffusers folder."""
    u = cfg.unet
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=u.sample_size, in_channels=u.channels, out_channels=u.channels,
        block_out_channels=tuple(u.block_out_channels), layers_per_block=u.layers_per_block,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=u.cross_attention_dim, attention_head_dim=u.attention_head_dim, norm_num_groups=u.norm_num_groups,
    )
    scheduler = DDPMScheduler(num_train_timesteps=u.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                              prediction_type="epsilon", clip_sample=True, timestep_spacing="trailing")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, text_encoder = build_text_encoder(folder)
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    return unet, text_encoder, tokenizer, scheduler


def cosine_lr(peak: float, step: int, total: int, *, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    return peak * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / total)))


def ddpm_update(model, optimizer, params, scheduler, x0: torch.Tensor, hidden: torch.Tensor, *, seed: int, step: int,
                indices: list[int], lr: float, high_share: float = 0.0, x0_cap: float = 0.0) -> float:
    """One ε-prediction DDPM update, (t, ε) keyed per sample (seppo.rng); returns the loss.

    Options of the video world's motion pretraining (seppo.embedded.video_world), both off by
    default: `high_share`, the share of samples whose t is drawn from the top half of the range
    instead (T/2 + t/2, where the clip's layout is decided); `x0_cap`, each sample's ε-error
    weighted by 1/SNR(t) clamped to [1, x0_cap] (1/SNR turns the ε-error into the x̂0 error)."""
    num_t = scheduler.config.num_train_timesteps
    t, eps = rng.timestep_and_noise(num_t, x0.shape[1:], seed=seed, key=step, indices=indices)
    if high_share:  # its own draw; the stream is the flipper's, unused in pretraining
        high = rng.per_sample_rand(seed=seed, stream="flipper_timestep", key=step, indices=indices) < high_share
        t = torch.where(high, num_t // 2 + t // 2, t)
    x_t = scheduler.add_noise(x0, eps, t)
    error = per_sample_error(model(x_t, t, encoder_hidden_states=hidden).sample, eps)  # (B,)
    if x0_cap:
        alpha = scheduler.alphas_cumprod[t]
        error = ((1 - alpha) / alpha).clamp(min=1.0, max=x0_cap) * error
    return optimizer_step(optimizer, params, error.mean(), lr=lr)


def optimizer_step(optimizer, params, loss: torch.Tensor, *, lr: float) -> float:
    """Set the learning rate, back-propagate `loss`, clip the gradient norm at 1, step; returns the loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return loss.item()


def pretrain(cfg: PretrainConfig, out: Path, *, seed: int = 0, snapshots: dict[str, int] | None = None,
             progress: bool = True) -> dict[str, Path]:
    """Train from scratch for `max(snapshots.values())` steps, saving a model folder at each
    named step (default: {"base": cfg.steps}). Returns the folders."""
    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bars per save
    diffusers.utils.logging.disable_progress_bar()
    snapshots = snapshots or {"base": cfg.steps}
    total = max(snapshots.values())
    work = out / "_init"
    unet, text_encoder, tokenizer, scheduler = build_tiny_model(cfg, work, seed=seed)
    images, labels = real_digits("all")
    x_all = torch.from_numpy(images).float().unsqueeze(1)  # (N, 1, 16, 16)
    prompts_all = [digit_prompt(int(d)) for d in labels]
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    unet.train(), text_encoder.train()
    saved: dict[str, Path] = {}
    bar = tqdm(range(total), desc="pretrain", disable=not progress, unit="step")
    t0 = time.time()
    for step in bar:
        idx = list(range(step * cfg.batch_size, (step + 1) * cfg.batch_size))
        pick = rng.per_sample_randint(len(x_all), seed=seed, stream="flip", key=step, indices=idx)
        x0 = x_all[pick]
        drop = rng.per_sample_rand(seed=seed, stream="dropout", key=step, indices=idx) < cfg.empty_prompt_prob
        prompts = ["" if d else prompts_all[i] for i, d in zip(pick.tolist(), drop.tolist())]
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        hidden = text_encoder(ids)[0]
        loss = ddpm_update(unet, optimizer, params, scheduler, x0, hidden, seed=seed, step=step, indices=idx,
                           lr=cosine_lr(cfg.lr, step, total, warmup=100))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")
        for name, at in snapshots.items():
            if step + 1 == at:
                folder = out / name
                if folder.exists():
                    shutil.rmtree(folder)
                shutil.copytree(work, folder)
                unet.save_pretrained(folder / "unet")
                text_encoder.save_pretrained(folder / "text_encoder")
                (folder / "pretrain.json").write_text(json.dumps(
                    {"steps": at, "seconds": round(time.time() - t0, 1), "final_loss": loss,
                     "config": dataclasses.asdict(cfg)}, indent=1))
                saved[name] = folder
    shutil.rmtree(work)
    return saved


def ensure_embedded_base(cfg: PretrainConfig, *, seed: int = 0, progress: bool = True) -> dict[str, Path]:
    """The cached embedded base ("base") and its longer-trained sibling ("strong"), built once."""
    root = paths.embedded_models(cfg, seed)
    names = {"base": cfg.steps, "strong": cfg.steps + cfg.strong_extra_steps}
    folders = {name: root / name for name in names}
    if all((f / "pretrain.json").exists() for f in folders.values()) or paths.from_prebuilt(root):
        return folders
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    print(f"pretraining the embedded base model ({names['base']} steps, strong: {names['strong']}) into {root}")
    pretrain(cfg, tmp, seed=seed, snapshots=names, progress=progress)
    if root.exists():
        shutil.rmtree(root)
    tmp.replace(root)
    return folders
