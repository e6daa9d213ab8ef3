"""`seppo diagnose-flipper`: does the anchor-based flipper's s agree with a judge?

For iteration k of a run, θ_k (pool snapshot k) plays the current policy and θ_j (the
reference drawn for iteration k in `metrics.jsonl`, or every j < k) the reference. For each
held-out prompt c and noise key:

| code          | paper / meaning                                                       |
|---------------|-----------------------------------------------------------------------|
| `x_w`         | x^w, the anchor: a held-out winner for c (see "Anchors")              |
| `err[J]`      | e_θJ(x^w), averaged over `flipper_draws` draws of (t, ε) shared by all J |
| `s`           | sgn(e_ref(x^w) − e_θ(x^w)) (`losses.flipper_sign`, "sign")             |
| `ref_better`  | the judge scores x^ref (θ_j's sample) above θ_k's fresh sample, same key |

Reported per iteration: precision = P(ref_better | s = −1), recall = P(s = −1 | ref_better),
the flip rate P(s = −1), the base rate P(ref_better) that precision should beat, and n.
Each row is given for one draw of (t, ε) (the paper's flipper) and for `flipper_draws`.

Anchors. Training anchors on the dataset's winners; here they must be winners the run did
not train on. Pass `anchors` (one image per prompt) for any prompt set. Without them, digit
prompts use real digits of the judge split (`real_digits("judge")`): the alignment data of
the embedded world are generated Pick-a-Digit images, so real scans are held-out winners.
Reference samples are not used as anchors: a model fits its own samples best, which would
bias s towards −1 whenever the anchor came from the reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from seppo import rng
from seppo.data.transforms import ImageTransform
from seppo.embedded.digits import parse_digit, real_digits, to_pil
from seppo.errors import ConfigError, ModelError
from seppo.evaluate import score_images
from seppo.judges.registry import load_judge
from seppo.losses import flipper_sign
from seppo.models import eval_seeds, load_for_sampling, load_snapshot, sample
from seppo.run_dir import RunDir


def digit_anchors(prompts: Sequence[str], seed: int) -> list:
    """One real digit of the judge split per prompt, drawn by (seed, position)."""
    images, labels = real_digits("judge")
    out = []
    for i, prompt in enumerate(prompts):
        digit = parse_digit(prompt)
        if digit is None:
            raise ConfigError(f"diagnose-flipper: prompt {prompt!r} names no digit; pass held-out winners as anchors")
        pool = np.flatnonzero(labels == digit)
        pick = int(torch.randint(len(pool), (), generator=rng.generator(seed, "flip", 0, i)))
        out.append(to_pil(images[pool[pick]]))
    return out


def _anchor_latents(backbone, anchors: Sequence, resolution: int) -> torch.Tensor:
    """Anchor images → model space (B, *sample_shape), as the training cache would encode them."""
    transform = ImageTransform(resolution, channels=backbone.pixel_channels)
    pixels = torch.stack([transform(im).pixels for im in anchors])  # (B, C, H, W)
    return backbone.encode_images(pixels)


@torch.no_grad()
def anchor_errors(backbone, x_w: torch.Tensor, cond: dict, keys: Sequence[int], *, draws: int, seed: int) -> torch.Tensor:
    """e_θ(x^w) for the backbone's policy, one row per draw of (t, ε): (draws, B).

    Draw d uses the training streams keyed by (d, the sample's key), so every snapshot sees
    the same (t, ε), as policy and reference do in the loss."""
    rows = []
    for d in range(draws):
        t, eps = rng.timestep_and_noise(backbone.num_train_timesteps, x_w.shape[1:], seed=seed, key=d, indices=keys,
                                        device=x_w.device)
        rows.append(backbone.denoising_error(x_w, t, eps, cond))
    return torch.stack(rows).cpu()  # (draws, B)


def verdict_stats(s: np.ndarray, ref_better: np.ndarray) -> dict:
    """Precision and recall of "s = −1 ⇒ the reference sample is better", flip rate, base rate, n."""
    flipped = s < 0
    hits = int(np.sum(flipped & ref_better))
    return {
        # None, not NaN, when undefined: the result is written as strict JSON
        "precision": hits / int(flipped.sum()) if flipped.any() else None,
        "recall": hits / int(ref_better.sum()) if ref_better.any() else None,
        "flip_rate": float(flipped.mean()),
        "ref_better_rate": float(ref_better.mean()),
        "n": int(s.size),
    }


def _references(run: RunDir, k: int) -> list[int]:
    """The references drawn during iteration k (1-based in metrics.jsonl), else every j < k."""
    drawn = {row["reference"] for row in run.metrics() if row.get("iteration") == k and row.get("reference") is not None}
    return sorted(drawn) if drawn else list(range(k))


def diagnose_flipper(run_dir: Path, *, prompts: Sequence[str], judge: str, judge_paths: Mapping[str, str] = {},
                     n_per_prompt: int = 4, flipper_draws: int = 1, seed: int = 0, device="cpu",
                     anchors: Sequence | None = None, batch_size: int = 64) -> dict:
    """Flipper verdicts against the judge's, per iteration; see the module docstring."""
    run = RunDir(run_dir)
    sampler = run.config().sampler
    snapshots = run.snapshots()
    if len(snapshots) < 2:
        raise ModelError(f"{run_dir}: needs pool snapshots θ_0 and θ_1 at least, found {len(snapshots)}")
    scorer = load_judge(judge, judge_paths, device)
    backbone = load_for_sampling(str(run_dir), device=device)
    resolution = run.config().data.resolution
    batch_prompts = [p for p in prompts for _ in range(n_per_prompt)]
    keys = eval_seeds(seed, len(batch_prompts))
    anchor_source = "given" if anchors is not None else "real digits (judge split)"
    if anchors is None:
        anchors = digit_anchors(prompts, seed)
    if len(anchors) != len(prompts):
        raise ConfigError(f"diagnose-flipper: {len(anchors)} anchors for {len(prompts)} prompts")
    x_w = _anchor_latents(backbone, [a for a in anchors for _ in range(n_per_prompt)], resolution)
    cond = backbone.encode_prompts(batch_prompts)

    # ─── every snapshot once: its samples' judge scores and its errors on the anchors ───
    scores, errors = {}, {}
    for j, path in snapshots.items():
        load_snapshot(backbone, path)
        images = sample(backbone, batch_prompts, seeds=keys, resolution=resolution, steps=sampler.steps,
                        guidance=sampler.guidance, eta=sampler.eta, batch_size=batch_size)
        scores[j] = score_images(images, batch_prompts, [scorer])[scorer.name]
        errors[j] = anchor_errors(backbone, x_w, cond, keys, draws=flipper_draws, seed=seed)

    # ─── pair policy θ_k with its references θ_j ───
    iterations, pairs = [], []
    for k in [k for k in snapshots if k >= 1]:
        refs = [j for j in _references(run, k) if j in snapshots and j < k]
        for draws in sorted({1, flipper_draws}):
            s_all, better_all = [], []
            for j in refs:
                s = flipper_sign(errors[k][:draws].mean(0), errors[j][:draws].mean(0), "sign").numpy()
                ref_better = scores[j] > scores[k]
                pairs.append({"iteration": k, "reference": j, "draws": draws, **verdict_stats(s, ref_better)})
                s_all.append(s)
                better_all.append(ref_better)
            if refs:
                iterations.append({"iteration": k, "references": refs, "draws": draws,
                                   **verdict_stats(np.concatenate(s_all), np.concatenate(better_all))})
    settings = {"run": str(run_dir), "judge": judge, "prompts": len(prompts), "n_per_prompt": n_per_prompt,
                "flipper_draws": flipper_draws, "seed": seed, "resolution": resolution, "sampler": dataclasses.asdict(sampler),
                "anchors": anchor_source}
    return {"settings": settings, "iterations": iterations, "pairs": pairs}
