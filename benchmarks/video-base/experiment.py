"""Why the embedded base video model does not learn direction: decisive numbers.

    python benchmarks/video-base/experiment.py checks
    python benchmarks/video-base/experiment.py train NAME [--train motion|unet] [--directions left]
        [--steps 240] [--batch 12] [--lr 1e-3] [--eval-per-cell 2]

`checks` (no training): the pipeline's layout links, each with a number —
  1. the motion judge on a pretraining batch exactly as `pretrain_motion` builds it
     ((B, 1, F, 16, 16)), sent back through `Backbone.decode` and `to_images` like samples;
  2. the same batch noised at small t and denoised by the untrained base video model
     (motion modules zero = the image model per frame): x̂0's motion; a reshape bug that
     scrambled frames would show here.

`train` trains a video model from the demo's image base (the motion modules only, or the whole
UNet with them), then reports
  - x̂0-motion: real clips (the judge's split) noised at t, the model's x̂0 scored by the motion
    judge against the prompted direction: where, in t, the model knows which way the clip moves;
  - samples: guided DDIM clips (6 steps, guidance 3, the demo's evaluation noise keys) scored
    by the judges: motion (prompted direction), motion_any (best of 4 directions per clip:
    does the clip move coherently at all), digit, consistency, the annotator's utility (oracle).
Results go to benchmarks/video-base/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
RESULTS = HERE / "results"
T_LEVELS = (50, 200, 400, 600, 800, 950)


def first_world():
    """The video world as these experiments began: 8 frames of 1 px, positions unscaled (each
    run's layout and options are in its arguments)."""
    from seppo.embedded.video_world import VideoWorldConfig

    return VideoWorldConfig(num_frames=8, speed=1, position_scale=1.0)


def video_prompt_first(d: int, direction: str) -> str:
    """--direction-first: "moving left a handwritten digit 3" (8 tokens), so that every
    later position of the causal text encoder carries the direction."""
    return f"moving {direction} a handwritten digit {d}"


def PROMPT(d: int, direction: str) -> str:  # noqa: N802 (set by main from --direction-first)
    from seppo.embedded.clips import video_prompt

    return (video_prompt_first if os.environ.get("VIDEO_BASE_DIRECTION_FIRST") else video_prompt)(d, direction)


def anchored_clip(image, direction: str, num_frames: int, speed: int, anchor: str) -> np.ndarray:
    """The world's clip (`moving_clip`: setting off from the digit as given, frame 0 holds it), or
    with --anchor middle the world's first layout, centred in time (the middle frame holds it)."""
    from seppo.embedded.clips import moving_clip

    return moving_clip(image, direction, num_frames, speed, centred=anchor == "middle")


def image_base(which: str = "base"):
    """The demo's image base (or its strong sibling) as {"base": folder}."""
    from seppo.config import load_config
    from seppo.embedded.budget import DEMO_CONFIG
    from seppo.embedded.pretrain import ensure_embedded_base

    pretrain = load_config(DEMO_CONFIG, []).pretrain
    return pretrain, {"base": ensure_embedded_base(pretrain, progress=False)[which]}


def judges():
    from seppo.embedded.video_judges import FrameDigitJudge, MotionJudge, load_video_annotator

    return {"motion": MotionJudge(), "digit": FrameDigitJudge(), "annotator": load_video_annotator()}


def score(clips: np.ndarray, digits: np.ndarray, directions: list[str], j: dict, anchor: str = "middle") -> dict:
    from seppo.embedded.clips import DIRECTIONS
    from seppo.embedded.video_judges import centroid_steps, direction_match, temporal_consistency

    motion = j["motion"].score_arrays(clips, directions)
    per_way = np.stack([j["motion"].score_arrays(clips, [d] * len(clips)) for d in DIRECTIONS])  # (4, N)
    # The per-frame judges roll every frame onto frame 0, which holds the digit as given in the
    # world's clips. With --anchor middle the middle frame holds it: the frame order is swapped
    # for them (a mean over frames), and the annotator's motion term is taken on the true order.
    swapped = clips
    if anchor == "middle":
        order = list(range(clips.shape[1]))
        mid = (len(order) - 1) // 2
        order[0], order[mid] = mid, 0
        swapped = clips[:, order]
    w = j["annotator"].motion_weight
    utility = (j["annotator"].utility(swapped, digits, directions)
               + w * (direction_match(centroid_steps(clips), directions)
                      - direction_match(centroid_steps(swapped), directions)))
    return {"n": len(clips), "motion": float(motion.mean()), "motion_any": float(per_way.max(0).mean()),
            "digit": float(j["digit"].score_arrays(swapped, digits).mean()),
            "consistency": float(temporal_consistency(clips).mean()),
            "utility": float(utility.mean())}


def text_table(tokenizer, text_encoder, prompts):
    with torch.no_grad():
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        return text_encoder(ids)[0]  # (P, L, D)


@torch.no_grad()
def x0_motion(model, scheduler, tokenizer, text_encoder, j, *, speed: int = 1, n_per_way: int = 25, seed: int = 0,
              wrong: bool = False, frames: int = 8, anchor: str = "middle") -> dict:
    """Real clips (judge split) noised at each t in T_LEVELS; motion of the model's x̂0."""
    from seppo.embedded.clips import DIRECTIONS
    from seppo.embedded.digits import real_digits

    images, labels = real_digits("judge")
    g = np.random.default_rng(seed)
    pick = g.choice(len(images), n_per_way, replace=False)
    clips, directions, prompts = [], [], []
    for d in DIRECTIONS:
        clips += [anchored_clip(images[i], d, frames, speed, anchor) for i in pick]
        directions += [d] * n_per_way
        # wrong: the prompt names the direction a quarter turn away (the clip still moves d)
        named = list(DIRECTIONS)[(list(DIRECTIONS).index(d) + 2) % 4] if wrong else d
        prompts += [PROMPT(int(labels[i]), named) for i in pick]
    x0 = torch.from_numpy(np.stack(clips)).unsqueeze(1)  # (N, 1, F, 16, 16)
    f = x0.shape[2]
    hidden = text_table(tokenizer, text_encoder, prompts).repeat_interleave(f, dim=0)  # (N·F, L, D)
    eps = torch.from_numpy(g.standard_normal(x0.shape).astype(np.float32))
    out = {}
    model.eval()
    for t in T_LEVELS:
        tt = torch.full((len(x0),), t)
        x_t = scheduler.add_noise(x0, eps, tt)
        eps_hat = model(x_t, tt, encoder_hidden_states=hidden).sample
        a = scheduler.alphas_cumprod[t]
        x0_hat = ((x_t - (1 - a).sqrt() * eps_hat) / a.sqrt()).clamp(-1, 1)  # (N, 1, F, 16, 16)
        x0_hat = x0_hat[:, 0].numpy()  # (N, F, 16, 16)
        out[str(t)] = {"motion": float(j["motion"].score_arrays(x0_hat, directions).mean()),
                       "slope": offset_slope(x0_hat, directions),
                       "motion_noisy_input": float(j["motion"].score_arrays(x_t[:, 0].clamp(-1, 1).numpy(),
                                                                           directions).mean())}
    return out


def offset_slope(clips: np.ndarray, directions: list[str]) -> float:
    """How far x̂0's ink moves per frame along the clip's direction, in px (the data: exactly the
    speed): the least-squares slope of the circular centroid's offset from the middle frame
    against the frame's offset in time."""
    from seppo.embedded.clips import DIRECTIONS
    from seppo.embedded.video_judges import _wrap, circular_centroid

    c = circular_centroid(clips)  # (N, F, 2)
    mid = (clips.shape[1] - 1) // 2
    d = _wrap(c - c[:, mid:mid + 1])  # (N, F, 2)
    u = np.array([DIRECTIONS[x] for x in directions], dtype=np.float64)  # (N, 2)
    along = (d * u[:, None, :]).sum(-1)  # (N, F)
    k = np.arange(clips.shape[1]) - mid  # (F,)
    return float((along * k).sum() / (len(clips) * (k ** 2).sum()))


# ---------------------------------------------------------------- checks


def cmd_checks(args) -> None:
    from diffusers import UNetMotionModel

    from seppo.backbone import Backbone
    from seppo.embedded.clips import DIRECTIONS, clip_arrays, moving_clip
    from seppo.embedded.digits import real_digits
    from seppo.embedded.video_world import _load_image_parts, build_motion_adapter
    from seppo.models import to_images

    pretrain, image = image_base()
    j = judges()
    images, labels = real_digits("all")
    directions = list(DIRECTIONS)
    g = np.random.default_rng(0)
    pick, way = g.integers(0, len(images), 64), g.integers(0, 4, 64)
    clips = np.stack([moving_clip(images[i], directions[w], 8, 1, centred=True) for i, w in zip(pick, way)])
    x0 = torch.from_numpy(clips).unsqueeze(1)  # (B, 1, F, 16, 16), as pretrain_motion builds it
    dirs = [directions[w] for w in way]
    bb = Backbone.__new__(Backbone)
    bb.vae = None
    pixels = Backbone.decode(bb, x0)  # (B, F, 1, 16, 16)
    back = clip_arrays(to_images(pixels))
    res = {"1_judge_on_training_batch": float(j["motion"].score_arrays(back, dirs).mean())}
    unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])
    model = UNetMotionModel.from_unet2d(unet, build_motion_adapter(pretrain, first_world()))
    res["2_untrained_video_model_x0_motion"] = x0_motion(model, scheduler, tokenizer, text_encoder, j)
    res["2b_same_at_speed_2"] = x0_motion(model, scheduler, tokenizer, text_encoder, j, speed=2)
    print(json.dumps(res, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "checks.json").write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------- train


def cmd_train(args) -> None:
    from diffusers import UNetMotionModel

    from seppo import rng
    from seppo.embedded.clips import DIRECTIONS
    from seppo.embedded.digits import real_digits
    from seppo.embedded.pretrain import cosine_lr, ddpm_update
    from seppo.embedded.video_world import _load_image_parts, build_motion_adapter

    torch.set_num_threads(int(os.environ.get("SEPPO_THREADS", "1")))
    pretrain, image = image_base(args.image)
    j = judges()
    video = first_world()
    if args.init:  # a second stage: go on from an earlier run's saved model (its scaled tables included)
        from diffusers import MotionAdapter

        image = {"base": Path(args.init)}
        unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])
        model = UNetMotionModel.from_unet2d(unet, MotionAdapter.from_pretrained(image["base"] / "motion_adapter"))
    else:
        unet, text_encoder, tokenizer, scheduler = _load_image_parts(image["base"])
        model = UNetMotionModel.from_unet2d(unet, build_motion_adapter(pretrain, video, seed=args.seed))
    if args.pe_scale != 1.0:  # the motion modules' sinusoidal frame-position embeddings, made stronger
        scale_frame_positions(model, args.pe_scale)
    if args.direction_scale != 1.0:  # the image base never trained the direction words' embeddings
        with torch.no_grad():
            embed = text_encoder.get_input_embeddings().weight
            for word in DIRECTIONS:
                embed[tokenizer.convert_tokens_to_ids(word + "</w>")] *= args.direction_scale
    model.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if args.train.startswith("unet") or "motion_modules" in n]
    if args.train == "unet+text":
        params += list(text_encoder.parameters())
    for p in params:
        p.requires_grad_(True)
    images, labels = real_digits("all")
    if args.one_image >= 0:  # overfit: one image of this digit (4 clips, one per direction)
        first = int(np.flatnonzero(labels == args.one_image)[0])
        images, labels = images[first:first + 1], labels[first:first + 1]
    directions = args.directions.split(",") if args.directions else list(DIRECTIONS)
    prompts = [PROMPT(d, r) for d in range(10) for r in DIRECTIONS]  # 4·d + direction index
    table = text_table(tokenizer, text_encoder, prompts + [""])
    text_ids = {id(p) for p in text_encoder.parameters()}
    groups = [{"params": [p for p in params if id(p) not in text_ids], "scale": 1.0},
              {"params": [p for p in params if id(p) in text_ids], "scale": args.text_lr_scale}]
    optimizer = ScaledAdamW([g for g in groups if g["params"]], lr=args.lr, weight_decay=0.0)
    f, losses, t0 = args.frames, [], time.time()
    evals = {int(e) for e in args.evals.split(",")} if args.evals else {args.steps}
    res = {"args": vars(args), "at": {}}
    model.train()
    for step in range(args.steps):
        idx = list(range(step * args.batch, (step + 1) * args.batch))
        pick = rng.per_sample_randint(len(images), seed=1000 + args.seed, stream="flip", key=step, indices=idx).tolist()
        way = rng.per_sample_randint(len(directions), seed=1000 + args.seed, stream="reference", key=step, indices=idx).tolist()
        clips = np.stack([anchored_clip(images[i], directions[w], f, args.speed, args.anchor) for i, w in zip(pick, way)])
        x0 = torch.from_numpy(clips).unsqueeze(1)  # (B, 1, F, 16, 16)
        drop = rng.per_sample_rand(seed=1000 + args.seed, stream="dropout", key=step, indices=idx) < video.empty_prompt_prob
        rows = [len(prompts) if dr else 4 * int(labels[i]) + list(DIRECTIONS).index(directions[w])
                for i, w, dr in zip(pick, way, drop.tolist())]
        if args.train == "unet+text":  # the direction tokens' embeddings train too (from --text-from on)
            ids = tokenizer(prompts + [""], padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids
            with torch.set_grad_enabled(step >= args.text_from):
                table = text_encoder(ids)[0]  # (41, L, D)
        hidden = table[rows].repeat_interleave(f, dim=0)  # (B·F, L, D)
        # --t-high: a share of the clips draws t from the top half of the noise range
        losses.append(ddpm_update(model, optimizer, params, scheduler, x0, hidden, seed=1000 + args.seed, step=step,
                                  indices=idx, lr=cosine_lr(args.lr, step, args.steps, warmup=20),
                                  high_share=args.t_high, x0_cap=args.x0_weight if args.t_high else 0.0))
        if step % 20 == 0:
            print(f"step {step} loss {np.mean(losses[-20:]):.4f} {time.time() - t0:.0f}s", flush=True)
        if step + 1 in evals:
            seconds = time.time() - t0
            layout = {"speed": args.speed, "frames": args.frames, "anchor": args.anchor}
            res["at"][step + 1] = row = {"train_seconds": round(seconds, 1), "loss": float(np.mean(losses[-20:])),
                                         "x0_motion": x0_motion(model, scheduler, tokenizer, text_encoder, j, **layout),
                                         "x0_motion_wrong_prompt": x0_motion(model, scheduler, tokenizer, text_encoder,
                                                                             j, wrong=True, **layout)}
            row["samples"] = sample_and_score(model, text_encoder, image["base"], args, directions, j)
            print(json.dumps({step + 1: {"x0": {t: v["motion"] for t, v in row["x0_motion"].items()},
                                         "x0_wrong": {t: v["motion"] for t, v in row["x0_motion_wrong_prompt"].items()},
                                         "samples": row["samples"]}}), flush=True)
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{args.name}.json").write_text(json.dumps(res, indent=1))
            t0 = time.time() - seconds
            model.train()


class ScaledAdamW(torch.optim.AdamW):
    """AdamW whose groups step at `scale` × the learning rate that `optimizer_step` sets."""

    def step(self, closure=None):
        for group in self.param_groups:
            group["lr"] *= group.get("scale", 1.0)
        return super().step(closure)


def scale_frame_positions(model, factor: float) -> int:
    """Multiply every motion module's sinusoidal position table (a saved buffer) by `factor`."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    tables = [m for n, m in model.named_modules() if "motion_modules" in n and isinstance(m, SinusoidalPositionalEmbedding)]
    for m in tables:
        m.pe.mul_(factor)
    return len(tables)


def sample_and_score(model, text_encoder, image_folder: Path, args, directions: list[str], j: dict) -> dict:
    """Save the trained model as a video model folder and sample it through seppo's own path."""
    from diffusers import UNet2DConditionModel

    from seppo.embedded.clips import clip_arrays
    from seppo.models import eval_seeds, load_for_sampling, sample

    folder = Path(os.environ.get("SEPPO_CACHE", "/tmp")) / "video-base-experiments" / args.name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(image_folder, folder)
    model.save_motion_modules(str(folder / "motion_adapter"))
    if args.train.startswith("unet"):  # "unet" and "unet+text": the image layers trained too
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        state = {k: v for k, v in model.state_dict().items() if "motion_modules" not in k}
        unet.load_state_dict(state, strict=True)
        unet.save_pretrained(folder / "unet")
    if args.train == "unet+text" or args.direction_scale != 1.0:  # trained, or its direction words scaled
        text_encoder.save_pretrained(folder / "text_encoder")
    backbone = load_for_sampling(str(folder), num_frames=args.frames)
    digits = [args.one_image] if args.one_image >= 0 else range(10)
    cells = [(d, r) for d in digits for r in directions for _ in range(args.eval_per_cell)]
    prompts = [PROMPT(d, r) for d, r in cells]
    t0 = time.time()
    videos = sample(backbone, prompts, seeds=eval_seeds(0, len(prompts)), resolution=16, steps=6, guidance=3.0,
                    batch_size=32)
    out = score(clip_arrays(videos), np.array([d for d, _ in cells]), [r for _, r in cells], j, args.anchor)
    out["sample_seconds"] = round(time.time() - t0, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("checks")
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("--train", choices=["motion", "unet", "unet+text"], default="motion")
    t.add_argument("--directions", default="")
    t.add_argument("--steps", type=int, default=240)
    t.add_argument("--batch", type=int, default=12)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--eval-per-cell", type=int, default=2)
    t.add_argument("--speed", type=int, default=1)
    t.add_argument("--one-image", type=int, default=-1, help="train on one image of this digit")
    t.add_argument("--direction-first", action="store_true", help='prompts "moving left a handwritten digit 3"')
    t.add_argument("--direction-scale", type=float, default=1.0, help="scale the direction words' embeddings")
    t.add_argument("--text-lr-scale", type=float, default=1.0, help="with unet+text: the text encoder's lr, relative")
    t.add_argument("--text-from", type=int, default=0, help="with unet+text: the text encoder trains from this update on")
    t.add_argument("--pe-scale", type=float, default=1.0, help="scale the motion modules' frame-position embeddings")
    t.add_argument("--t-high", type=float, default=0.0)
    t.add_argument("--x0-weight", type=float, default=0.0, help="with --t-high: weight min(1/SNR, this), at least 1")
    t.add_argument("--frames", type=int, default=8, help="frames per clip (the world's: 8)")
    t.add_argument("--seed", type=int, default=0, help="training seed: the draws' keys and the adapter's init")
    t.add_argument("--init", default="", help="start from this earlier run's model folder (a second stage)")
    t.add_argument("--anchor", choices=["middle", "start"], default="middle",
                   help="clips centred in time (the world's) or setting off from the digit as given")
    t.add_argument("--image", choices=["base", "strong"], default="base", help="the image base to start from")
    t.add_argument("--evals", default="", help="steps at which to evaluate (default: the last)")
    args = p.parse_args()
    if getattr(args, "direction_first", False):
        os.environ["VIDEO_BASE_DIRECTION_FIRST"] = "1"
    torch.set_num_threads(int(os.environ.get("SEPPO_THREADS", "1")))
    {"checks": cmd_checks, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
