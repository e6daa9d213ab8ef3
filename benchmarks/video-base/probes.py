"""Probes behind benchmarks/video-base/README.md, each printing the numbers quoted there.

    python benchmarks/video-base/probes.py base            # the image base and the pipeline
    python benchmarks/video-base/probes.py model FOLDER [--speed 2]   # a trained video model

`base` (no training, ~1 min on one thread):
  - lattice: the demo's image base denoising a real digit rolled k px to the left, k = 0..4:
    x̂0's error and the share of digits whose x̂0 lands shifted from the truth;
  - text: how much the text encoder's states differ between direction words and between digits;
  - judge-noise: the motion judge on real clips with Gaussian pixel noise (is it robust);
  - round-trip: a video model with random motion weights, saved with `save_motion_modules` and
    reloaded by `seppo.models.load_for_sampling`: the largest output difference.
`ways FOLDER [--digit D] [--frames F]`: 10 clips from noise per prompted direction (the evaluation sampler: 6
  guided DDIM steps, guidance 3; digit D, or digits 0..9): for each prompted direction, the share
  of frame steps moving each way (is the axis right, and the sign).
`text FOLDER`: that model's own text encoder, left vs right and left vs up, per position.
`model FOLDER` (a folder `experiment.py train` wrote; ~2 min):
  - partial DDIM: real clips noised to t0 ∈ {800, 600, 400}, then guided DDIM (25-step
    schedule, guidance 3) to the end: the motion judge on the result (where in t motion is lost);
  - the steps that DDIM from t0 = 400 produces, along the prompted direction (px, counted);
  - samplers: from noise, guidance 1 or 3, 6 or 25 steps, η 0 or 1 (is it the sampler);
  - axis: from noise, the share of frame steps moving the prompted way, the opposite way and
    each perpendicular way; x̂0 at t = 950 for "digit 3 moving left/right/up" on one noise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
PERPENDICULAR = {"left": "up", "right": "down", "up": "left", "down": "right"}


def cmd_base(_args) -> None:
    from diffusers import UNetMotionModel
    from experiment import first_world, image_base

    from seppo.embedded.clips import real_clips
    from seppo.embedded.digits import digit_prompt, real_digits
    from seppo.embedded.video_judges import MotionJudge, _phase_shift, centroid_steps, direction_match
    from seppo.embedded.video_world import _load_image_parts, build_motion_adapter
    from seppo.models import load_for_sampling

    pretrain, image = image_base()
    unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])

    print("== lattice: the image base on a real digit rolled k px left (200 digits of the judge split)")
    images, labels = real_digits("judge")
    g = np.random.default_rng(0)
    pick = g.choice(len(images), 200, replace=False)
    ids = tokenizer([digit_prompt(int(labels[i])) for i in pick], padding="max_length",
                    max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = text_encoder(ids)[0]
    eps = torch.from_numpy(g.standard_normal((200, 1, 16, 16)).astype(np.float32))
    for t in (50, 200, 400):
        row = []
        for k in range(5):
            x0 = torch.from_numpy(np.roll(images[pick], -k, axis=2)).unsqueeze(1)
            tt = torch.full((200,), t)
            x_t = scheduler.add_noise(x0, eps, tt)
            with torch.no_grad():
                e = unet(x_t, tt, encoder_hidden_states=hidden).sample
            a = scheduler.alphas_cumprod[t]
            x0_hat = ((x_t - (1 - a).sqrt() * e) / a.sqrt()).clamp(-1, 1)
            shift = _phase_shift(x0[:, 0].numpy(), x0_hat[:, 0].numpy())
            row.append(f"k={k}: mse {float(((x0_hat - x0) ** 2).mean()):.3f}, "
                       f"shifted {np.mean(np.abs(shift).sum(-1) > 0.5):.2f}")
        print(f"t={t}: " + " | ".join(row))

    print("== text: relative difference of the text encoder's states, per token position")
    prompts = ["a handwritten digit 3 moving left", "a handwritten digit 3 moving right",
               "a handwritten digit 7 moving left"]
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        h = text_encoder(ids)[0]
    embed = text_encoder.get_input_embeddings().weight.detach()
    norm = {w: round(float(embed[tokenizer.convert_tokens_to_ids(w + "</w>")].norm()), 2)
            for w in ["left", "right", "up", "down", "3", "7"]}
    print("token embedding norms:", norm)
    for p in range(h.shape[1]):
        left_right = float((h[0, p] - h[1, p]).norm() / h[0, p].norm())
        three_seven = float((h[0, p] - h[2, p]).norm() / h[0, p].norm())
        print(f"position {p}: left vs right {left_right:.2f}, digit 3 vs 7 {three_seven:.2f}")

    print("== judge-noise: the motion judge (and the annotator's centroid) on noisy real clips")
    clips, _, directions = real_clips("judge", num_frames=8, speed=1)
    idx = g.choice(len(clips), 400, replace=False)
    clips, directions = clips[idx], [directions[i] for i in idx]
    for sigma in (0.0, 0.05, 0.1, 0.2):
        noisy = np.clip(clips + sigma * g.standard_normal(clips.shape).astype(np.float32), -1, 1)
        print(f"sigma {sigma}: judge {MotionJudge().score_arrays(noisy, directions).mean():.3f}, "
              f"centroid {direction_match(centroid_steps(noisy), directions).mean():.3f}")

    print("== round-trip: save_motion_modules → load_for_sampling")
    model = UNetMotionModel.from_unet2d(unet, build_motion_adapter(pretrain, first_world()))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "motion_modules" in n:
                p.add_(0.1 * torch.randn_like(p))
    out = Path(tempfile.mkdtemp()) / "model"
    shutil.copytree(image["base"], out)
    model.save_motion_modules(str(out / "motion_adapter"))
    backbone = load_for_sampling(str(out), num_frames=8)
    x, t, h = torch.randn(2, 1, 8, 16, 16), torch.tensor([500, 500]), torch.randn(16, 8, 32)
    model.eval()
    with torch.no_grad():
        diff = (model(x, t, encoder_hidden_states=h).sample - backbone.unet(x, t, encoder_hidden_states=h).sample)
    print(f"max |in memory − reloaded| = {float(diff.abs().max()):.2e}")
    shutil.rmtree(out.parent)


def guided_ddim(backbone, x, cond, null, timesteps, scheduler, guidance=3.0):
    for t in timesteps:
        tb = torch.full((len(x),), t)
        out = backbone.predict(torch.cat([x, x]), torch.cat([tb, tb]),
                               {"hidden": torch.cat([null["hidden"], cond["hidden"]])})  # (2B, ...): ∅, then c
        out_null, out_cond = out.chunk(2)
        x = scheduler.step(out_null + guidance * (out_cond - out_null), t, x).prev_sample
    return x


def cmd_model(args) -> None:
    from seppo.embedded.clips import DIRECTIONS, clip_arrays, moving_clip, video_prompt
    from seppo.embedded.digits import real_digits
    from seppo.embedded.video_judges import MotionJudge, phase_correlation_steps, temporal_consistency
    from seppo.models import eval_seeds, load_for_sampling, sample
    from seppo.sampler import ddim_schedule

    judge = MotionJudge()
    backbone = load_for_sampling(args.folder, num_frames=8)
    images, labels = real_digits("judge")
    g = np.random.default_rng(0)
    pick = g.choice(len(images), 10, replace=False)
    clips, dirs, prompts = [], [], []
    for d in DIRECTIONS:
        clips += [moving_clip(images[i], d, 8, args.speed, centred=True) for i in pick]
        dirs += [d] * len(pick)
        prompts += [video_prompt(int(labels[i]), d) for i in pick]
    x0 = torch.from_numpy(np.stack(clips)).unsqueeze(1)  # (40, 1, F, 16, 16)
    cond, null = backbone.encode_prompts(prompts), backbone.null_cond(len(prompts), for_guidance=True)
    scheduler, timesteps = ddim_schedule(backbone, 25)
    eps = torch.from_numpy(g.standard_normal(x0.shape).astype(np.float32))
    u = np.array([DIRECTIONS[d] for d in dirs], dtype=float)
    print("== partial DDIM from real clips (40 clips, guidance 3)")
    with torch.no_grad():
        for t0 in (800, 600, 400):
            start = [i for i, t in enumerate(timesteps) if t <= t0][0]
            x = backbone.add_noise(x0, eps, torch.full((len(x0),), timesteps[start]))
            v = guided_ddim(backbone, x, cond, null, timesteps[start:], scheduler).clamp(-1, 1)[:, 0].numpy()
            print(f"from t={timesteps[start]}: motion {judge.score_arrays(v, dirs).mean():.2f}")
        along = np.rint((phase_correlation_steps(v) * u[:, None, :]).sum(-1)).astype(int).ravel()
        print("steps along the prompted direction, from t≈400 (px: count):",
              {int(k): int(c) for k, c in zip(*np.unique(along, return_counts=True))})

    cells = [(d, r) for d in range(10) for r in DIRECTIONS]
    prompts = [video_prompt(d, r) for d, r in cells]
    dirs = [r for _, r in cells]
    print("== samplers, from noise (40 clips)")
    for guidance, steps, eta in [(3.0, 6, 0.0), (1.0, 6, 0.0), (3.0, 25, 0.0), (3.0, 25, 1.0)]:
        v = clip_arrays(sample(backbone, prompts, seeds=eval_seeds(0, len(prompts)), resolution=16, steps=steps,
                               guidance=guidance, eta=eta, batch_size=40))
        print(f"guidance {guidance}, {steps} steps, eta {eta}: motion {judge.score_arrays(v, dirs).mean():.3f}, "
              f"consistency {temporal_consistency(v).mean():.3f}")
        if (guidance, steps, eta) == (3.0, 6, 0.0):
            same = judge.score_arrays(v, dirs).mean()
            opposite = judge.score_arrays(v, [OPPOSITE[r] for r in dirs]).mean()
            perpendicular = np.mean([judge.score_arrays(v, [PERPENDICULAR[r] for r in dirs]).mean(),
                                     judge.score_arrays(v, [OPPOSITE[PERPENDICULAR[r]] for r in dirs]).mean()])
    print(f"== axis: steps moving the prompted way {same:.3f}, the opposite way {opposite:.3f}, "
          f"each perpendicular way {perpendicular:.3f}")
    c = backbone.encode_prompts([video_prompt(3, r) for r in ("left", "right", "up")])
    x = torch.randn(1, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0)).repeat(3, 1, 1, 1, 1)
    with torch.no_grad():
        e = backbone.predict(x, torch.full((3,), 950), c)
    a = backbone.scheduler.alphas_cumprod[950]
    x0_hat = (x - (1 - a).sqrt() * e) / a.sqrt()
    print(f"x̂0 at t=950, one noise: |left − right| {float((x0_hat[0] - x0_hat[1]).norm()):.2f}, "
          f"|left − up| {float((x0_hat[0] - x0_hat[2]).norm()):.2f}, |x̂0| {float(x0_hat[0].norm()):.2f}")


def cmd_text(args) -> None:
    """A video model's own text encoder: left vs right and left vs up, per token position."""
    from seppo.models import load_for_sampling

    backbone = load_for_sampling(args.folder, num_frames=8)
    h = backbone.encode_prompts([f"a handwritten digit 3 moving {d}" for d in ("left", "right", "up")])["hidden"]
    for p in (5, 6, 7):
        rel = [float((h[0, p] - h[i, p]).norm() / h[0, p].norm()) for i in (1, 2)]
        print(f"position {p}: left vs right {rel[0]:.3f}, left vs up {rel[1]:.3f}")


def cmd_ways(args) -> None:
    from seppo.embedded.clips import DIRECTIONS, clip_arrays, video_prompt
    from seppo.embedded.video_judges import MotionJudge
    from seppo.models import eval_seeds, load_for_sampling, sample

    judge = MotionJudge()
    backbone = load_for_sampling(args.folder, num_frames=args.frames)
    cells = [(args.digit if args.digit >= 0 else d, r) for d in range(10) for r in DIRECTIONS]
    prompts = [video_prompt(d, r) for d, r in cells]
    videos = clip_arrays(sample(backbone, prompts, seeds=eval_seeds(0, len(prompts)), resolution=16, steps=6,
                                guidance=3.0, batch_size=40))
    prompted = np.array([r for _, r in cells])
    print(f"== {args.folder}: where 10 clips per prompted direction move (share of frame steps)")
    for r in DIRECTIONS:
        clips = videos[prompted == r]
        print(f"prompted {r:>5}: " + ", ".join(f"{w} {judge.score_arrays(clips, [w] * len(clips)).mean():.2f}"
                                                for w in DIRECTIONS))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("base")
    m = sub.add_parser("model")
    m.add_argument("folder")
    m.add_argument("--speed", type=int, default=1)
    sub.add_parser("text").add_argument("folder")
    w = sub.add_parser("ways")
    w.add_argument("folder")
    w.add_argument("--digit", type=int, default=-1)
    w.add_argument("--frames", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("SEPPO_THREADS", "1")))
    {"base": cmd_base, "model": cmd_model, "text": cmd_text, "ways": cmd_ways}[args.cmd](args)


if __name__ == "__main__":
    main()
