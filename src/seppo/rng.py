"""Seeded random streams keyed by (run seed, stream, step, global sample index).

Every per-sample draw (timestep t, noise ε, sampler noise, prompt dropout) comes from a
generator seeded by the sample's *global* index within the update, not by the process that
happens to hold it. So 2 processes × batch b draw exactly what 1 process × batch 2b draws,
gradient accumulation of 4 × b draws what one batch of 4b draws, and a resumed run draws
what the uninterrupted run would have, with no generator state to carry for these streams.
"""

from __future__ import annotations

from typing import Sequence

import torch

_MASK = (1 << 64) - 1
STREAMS = {"timestep": 1, "noise": 2, "sampler": 3, "sampler_eta": 4, "dropout": 5, "flip": 6, "reference": 7, "eval": 8, "eval_eta": 9,
           "flipper_timestep": 10, "flipper_noise": 11}


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def sample_seed(seed: int, stream: str, step: int, index: int) -> int:
    """A 63-bit seed unique to (seed, stream, step, index)."""
    x = _splitmix64(seed & _MASK)
    for part in (STREAMS[stream], step, index):
        x = _splitmix64(x ^ (part & _MASK))
    return x >> 1


def generator(seed: int, stream: str, step: int, index: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(sample_seed(seed, stream, step, index))


def per_sample_randn(
    shape: Sequence[int],
    *,
    seed: int,
    stream: str,
    step: int,
    indices: Sequence[int],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, one (shape) draw per global sample index: (len(indices), *shape)."""
    draws = [
        torch.randn(tuple(shape), generator=generator(seed, stream, step, i), dtype=torch.float32)
        for i in indices
    ]
    return torch.stack(draws).to(device=device, dtype=dtype)


def per_sample_rand(*, seed: int, stream: str, step: int, indices: Sequence[int]) -> torch.Tensor:
    """One U[0, 1) draw per global sample index: (len(indices),)."""
    return torch.tensor([torch.rand((), generator=generator(seed, stream, step, i)).item() for i in indices])


def per_sample_randint(high: int, *, seed: int, stream: str, step: int, indices: Sequence[int]) -> torch.Tensor:
    """One integer in [0, high) per global sample index: (len(indices),) int64."""
    return torch.tensor(
        [int(torch.randint(high, (), generator=generator(seed, stream, step, i))) for i in indices],
        dtype=torch.long,
    )
