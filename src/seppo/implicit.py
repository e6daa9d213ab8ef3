"""Diffusion-DPO's implicit accuracy, offline: on the pairs a run trained on and on pairs it never saw.

A DPO run's pool holds θ_J after each iteration (`RUN/pool/theta-J.safetensors`) and θ_0,
its frozen reference. For a pair (c, x^w, x^l) and a snapshot θ_J:

| code        | paper                                                     |
|-------------|-----------------------------------------------------------|
| `err[J]`    | e_θJ(x), the per-sample denoising error of snapshot J     |
| `delta_w`   | Δ_w = e_θJ(x^w) − e_θ0(x^w)                               |
| `delta_l`   | Δ_l = e_θJ(x^l) − e_θ0(x^l)                               |
| `logit`     | z = −½·β·(Δ_w − Δ_l), the argument of σ in the DPO loss   |

The implicit accuracy is the share of pairs with z > 0. Each pair's (t, ε) draws come from
keyed streams (evaluation seed, draw, the pair's position in its set), shared by winner and
loser and by every snapshot, so a curve over snapshots changes only with the weights.

Training pairs are the ones the run's data order actually visited (replayed with
`BatchOrder`); held-out pairs come from a pair set built from noise the training set never
used (`seppo.embedded.world.ensure_pick_a_digit(split="heldout")`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq
import torch

from seppo import paths, rng
from seppo.backbone import per_sample_error
from seppo.data.dataset import open_dataset
from seppo.data.loader import BatchOrder
from seppo.embedded.world import ensure_pick_a_digit, ensure_world
from seppo.models import load_for_sampling, load_snapshot
from seppo.run_dir import RunDir

DIAG_STREAM_OFFSET = 7_000_000  # step offset of the diagnostic (t, ε) draws: apart from training steps


@dataclass
class PairTensors:
    """Pairs in model space: winners and losers (N, ...), conditioning {name: (N, ...)}, keys."""

    x_w: torch.Tensor
    x_l: torch.Tensor
    cond: dict
    keys: list  # identity of each pair: (noise key of side 0, noise key of side 1) where recorded


def visited_indices(num_examples: int, global_batch: int, seed: int, updates: int) -> list[int]:
    """Dataset indices a run's data order visits in `updates` updates, first visits in order."""
    order = BatchOrder(num_examples, global_batch, seed)
    seen: dict[int, None] = {}
    for _ in range(updates):
        seen.update(dict.fromkeys(order.next_global_indices()))
    return list(seen)


def usable_pair_keys(parquet: Path, limit: int = 0) -> list[tuple[int, int]]:
    """(noise_0, noise_1) of every non-tie row in file order: the dataset's index order."""
    table = pq.read_table(parquet, columns=["label_0", "noise_0", "noise_1"]).to_pydict()
    keys = [(a, b) for lab, a, b in zip(table["label_0"], table["noise_0"], table["noise_1"]) if lab != 0.5]
    return keys[:limit] if limit else keys


def pair_tensors(cfg, backbone, parquet: Path | None, indices: Sequence[int] | None = None) -> PairTensors:
    """Pairs of a Pick-a-Pic parquet through the training cache (the run's exact tensors).

    `cfg` is the run's config; `parquet` None means the run's own data. `indices` picks
    dataset rows (default: all)."""
    if parquet is not None:
        data = dataclasses.replace(cfg.data, source="pickapic", path=str(parquet), limit=0)
        cfg = dataclasses.replace(cfg, method="dpo", data=data)
    dataset, _ = open_dataset(cfg, backbone, progress=False)
    path = Path(parquet) if parquet is not None else _run_data_path(cfg)
    all_keys = usable_pair_keys(path, cfg.data.limit)
    indices = list(range(len(dataset))) if indices is None else list(indices)
    batch = dataset.get(indices)
    return PairTensors(x_w=batch["winner"].float(), x_l=batch["loser"].float(),
                       cond={k: v.float() for k, v in batch["cond"].items()}, keys=[all_keys[i] for i in indices])


def _run_data_path(cfg) -> Path:
    if cfg.data.source == "embedded":
        return ensure_pick_a_digit(cfg.pretrain, progress=False)[0]
    return Path(cfg.data.path)


@torch.no_grad()
def pair_errors(backbone, pairs: PairTensors, *, seed: int, draws: int, batch_size: int = 256) -> torch.Tensor:
    """e(x^w) and e(x^l) of the backbone's current UNet: (draws, 2, N), (t, ε) keyed per pair."""
    n = len(pairs.keys)
    out = torch.zeros(draws, 2, n)
    for d in range(draws):
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            t = rng.per_sample_randint(backbone.num_train_timesteps, seed=seed, stream="timestep",
                                       key=DIAG_STREAM_OFFSET + d, indices=idx)
            eps = rng.per_sample_randn(pairs.x_w.shape[1:], seed=seed, stream="noise", key=DIAG_STREAM_OFFSET + d,
                                       indices=idx)
            x0 = torch.cat([pairs.x_w[idx], pairs.x_l[idx]])  # (2b, ...): winners, then losers
            t2, eps2 = t.repeat(2), eps.repeat(2, *([1] * (eps.dim() - 1)))  # (2b,), (2b, ...)
            cond = {k: v[idx].repeat(2, *([1] * (v.dim() - 1))) for k, v in pairs.cond.items()}  # (2b, ...)
            x_t = backbone.add_noise(x0, eps2, t2)
            err = per_sample_error(backbone.predict(x_t, t2, cond), backbone.target(x0, eps2, t2))  # (2b,)
            out[d, 0, idx], out[d, 1, idx] = err.chunk(2)  # (b,), (b,)
    return out


def dpo_logits(err_policy: torch.Tensor, err_reference: torch.Tensor, beta: float) -> torch.Tensor:
    """z = −½β[(e_θ(x^w) − e_0(x^w)) − (e_θ(x^l) − e_0(x^l))] from errors shaped (..., 2, N)."""
    delta = err_policy - err_reference  # (..., 2, N): Δ_w, Δ_l
    delta_w, delta_l = delta.unbind(-2)  # (..., N), (..., N)
    return -0.5 * beta * (delta_w - delta_l)


def implicit_accuracy_curve(run_dir: Path, heldout: Path, *, n_train: int = 256, n_heldout: int = 256,
                            draws: int = 2, seed: int = 12345) -> dict:
    """Implicit accuracy and mean logit of every pool snapshot of a DPO run, on `n_train`
    training pairs the run visited and on `n_heldout` pairs of the `heldout` parquet.

    Returns {"rows": [{"step", "train_acc", "heldout_acc", "train_logit", "heldout_logit"}],
    "train_keys", "heldout_keys", "beta"}: the keys let a caller check the sets are disjoint."""
    run = RunDir(run_dir)
    cfg = run.config()
    ensure_world(cfg, progress=False)
    backbone = load_for_sampling(str(paths.model_folder(cfg)))
    train_all = pair_tensors(cfg, backbone, None)
    total = cfg.train.iterations * cfg.train.updates_per_iteration
    visited = visited_indices(len(train_all.keys), cfg.train.batch_size * cfg.train.grad_accum, cfg.seed, total)
    pick = visited[:n_train]
    train = PairTensors(train_all.x_w[pick], train_all.x_l[pick], {k: v[pick] for k, v in train_all.cond.items()},
                        [train_all.keys[i] for i in pick])
    held = pair_tensors(cfg, backbone, heldout)
    held_pick = list(range(min(n_heldout, len(held.keys))))
    held = PairTensors(held.x_w[held_pick], held.x_l[held_pick], {k: v[held_pick] for k, v in held.cond.items()},
                       [held.keys[i] for i in held_pick])

    errors = {}
    for j, path in run.snapshots().items():
        load_snapshot(backbone, path)
        errors[j] = (pair_errors(backbone, train, seed=seed, draws=draws), pair_errors(backbone, held, seed=seed, draws=draws))
    rows = []
    per_iteration = cfg.train.updates_per_iteration
    for j, (e_train, e_held) in errors.items():
        z_train = dpo_logits(e_train, errors[0][0], cfg.beta)  # (draws, N)
        z_held = dpo_logits(e_held, errors[0][1], cfg.beta)
        rows.append({"step": j * per_iteration, "train_acc": float((z_train > 0).float().mean()),
                     "heldout_acc": float((z_held > 0).float().mean()),
                     "train_logit": float(z_train.mean()), "heldout_logit": float(z_held.mean())})
    return {"rows": rows, "train_keys": train.keys, "heldout_keys": held.keys, "beta": cfg.beta,
            "n_train": len(train.keys), "n_heldout": len(held.keys), "draws": draws,
            "train_pairs_available": len(train_all.keys), "train_pairs_visited": len(visited)}


def write_curve(curve: dict, path: Path) -> None:
    slim = {k: v for k, v in curve.items() if not k.endswith("_keys")}
    Path(path).write_text(json.dumps(slim, indent=1))


def accuracy_gap(rows: list[dict]) -> np.ndarray:
    """train − held-out implicit accuracy per snapshot: the memorisation signal."""
    return np.array([r["train_acc"] - r["heldout_acc"] for r in rows])
