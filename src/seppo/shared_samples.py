"""Reference samples kept by content, so runs that draw the same ones compute them once (ours).

A reference sample x^ref is a pure function of the reference's weights, the batch's
conditioning, the run seed, the update, the samples' global indices and the sampler's
settings (seppo.rng keys every draw). Runs of one benchmark share a lot of them: every
SePPO-like run of a seed draws θ_0, the base, in its first iteration, whatever its learning
rate, β or flipper; the DITTO-style and `reference: initial` arms draw θ_0 throughout. With
`sampler.share_dir` set, `update.reference_samples` looks a batch's samples up here by a
digest of all of those inputs and draws them only when they are missing, so a run's weights
are bit for bit those it would have without the folder (tests/test_shared_samples.py).

The digest covers what the run's config and the reference state can tell: the model's
fields (path, single file, motion adapter, prediction type), the training mode and precision,
and the reference's trainable weights. It cannot see a model folder rewritten in place under
the same path: a folder is meant for the runs of one benchmark (`seppo benchmark` keeps it
in its output folder).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from seppo.config import Config


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A digest of a snapshot's names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        _add_tensor(h, name, state[name])
    return h.hexdigest()


def sample_key(cfg: Config, reference: str, cond: Mapping[str, torch.Tensor], *, shape: Sequence[int], step: int,
               indices: Sequence[int], device: torch.device) -> str:
    """The digest naming one micro-batch's reference samples."""
    h = hashlib.sha256()
    m, t, s = cfg.model, cfg.train, cfg.sampler
    context = (m.path, m.single_file, m.motion_adapter, m.prediction_type, t.mode, t.lora_rank, t.lora_alpha,
               tuple(t.lora_targets), t.train_motion_only, t.mixed_precision, t.compile, device.type,
               s.steps, s.guidance, s.eta, cfg.seed, step, tuple(indices), tuple(shape), reference)
    h.update(repr(context).encode())
    for name in sorted(cond):
        _add_tensor(h, name, cond[name])
    return h.hexdigest()


def load_or_draw(folder: Path, key: str, draw: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The samples saved under `key`, or `draw()`'s, saved for the next run (atomically: two runs
    drawing the same key at once both write a whole file, and either one is kept)."""
    path = Path(folder) / f"{key}.safetensors"
    if path.is_file():
        return load_file(path)["x"]
    x = draw()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"x": x.detach().to("cpu").contiguous()}, tmp)
    os.replace(tmp, path)
    return x


def _add_tensor(h, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach().to("cpu").contiguous()
    h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
