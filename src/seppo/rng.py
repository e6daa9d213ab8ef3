"""Seeded random streams keyed by (run seed, stream, key parts…, global sample index).

Every per-sample draw (timestep t, noise ε, sampler noise, prompt dropout) comes from a
generator seeded by the sample's *global* index within the update, not by the process that
happens to hold it. So 2 processes × batch b draw exactly what 1 process × batch 2b draws,
gradient accumulation of 4 × b draws what one batch of 4b draws, and a resumed run draws
what the uninterrupted run would have, with no generator state to carry for these streams.

A key is any number of integers before the sample index: the update for the training
draws, (update, DDIM step) for η-noise, (update, draw) for the flipper's extra draws. The
draws never go through Python numbers, so drawing costs no host sync.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

_MASK = (1 << 64) - 1
STREAMS = {"timestep": 1, "noise": 2, "sampler": 3, "sampler_eta": 4, "dropout": 5, "flip": 6, "reference": 7, "eval": 8,
           "eval_eta": 9, "flipper_timestep": 10, "flipper_noise": 11}
# The (t, ε) stream pairs: the loss's draw, and the flipper's extra draws (`flipper_draws`).
TRAINING = ("timestep", "noise")
FLIPPER = ("flipper_timestep", "flipper_noise")

Key = Union[int, Sequence[int]]


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def sample_seed(seed: int, stream: str, *key: int) -> int:
    """A 63-bit seed unique to (seed, stream, key parts…)."""
    x = _splitmix64(seed & _MASK)
    for part in (STREAMS[stream], *key):
        x = _splitmix64(x ^ (part & _MASK))
    return x >> 1


def generator(seed: int, stream: str, *key: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(sample_seed(seed, stream, *key))


def _parts(key: Key) -> tuple[int, ...]:
    return (key,) if isinstance(key, int) else tuple(key)


def _generators(seed: int, stream: str, key: Key, indices: Sequence[int]) -> list[torch.Generator]:
    """One generator per global sample index, each keyed by (seed, stream, key…, index)."""
    return [generator(seed, stream, *_parts(key), i) for i in indices]


def per_sample_randn(shape: Sequence[int], *, seed: int, stream: str, key: Key, indices: Sequence[int],
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise, one (shape) draw per global sample index: (len(indices), *shape)."""
    draws = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in _generators(seed, stream, key, indices)]
    return torch.stack(draws).to(device=device, dtype=dtype)


def per_sample_rand(*, seed: int, stream: str, key: Key, indices: Sequence[int]) -> torch.Tensor:
    """One U[0, 1) draw per global sample index: (len(indices),) float32."""
    return torch.stack([torch.rand((), generator=g) for g in _generators(seed, stream, key, indices)])


def per_sample_randint(high: int, *, seed: int, stream: str, key: Key, indices: Sequence[int]) -> torch.Tensor:
    """One integer in [0, high) per global sample index: (len(indices),) int64."""
    return torch.stack([torch.randint(high, (), generator=g) for g in _generators(seed, stream, key, indices)])


def timestep_and_noise(num_train_timesteps: int, shape: Sequence[int], *, seed: int, key: Key,
                       indices: Sequence[int], device: str | torch.device = "cpu",
                       streams: tuple[str, str] = TRAINING) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward process's draw for each sample: t ~ U{0..T−1}, (B,), and ε ~ N(0, I), (B, *shape)."""
    t = per_sample_randint(num_train_timesteps, seed=seed, stream=streams[0], key=key, indices=indices)
    eps = per_sample_randn(shape, seed=seed, stream=streams[1], key=key, indices=indices, device=device)
    return t.to(device), eps
