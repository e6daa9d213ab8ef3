"""Which examples each step trains on, decided globally so process count does not matter.

The order is a seeded permutation per epoch over the whole dataset; each step takes the next
`global_batch` indices and every process takes its contiguous slice. So 2 processes with
batch b see exactly what 1 process with batch 2b sees, and a resumed run continues from
the saved (epoch, position).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from seppo.errors import DataError


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from several integers; stable across runs, machines and Python versions."""
    text = ":".join(str(int(p)) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


class BatchOrder:
    """Deterministic epoch-wise shuffling with drop_last, resumable from `state_dict()`."""

    def __init__(self, num_examples: int, global_batch: int, seed: int):
        if global_batch < 1:
            raise ValueError(f"global_batch must be positive, got {global_batch}")
        if num_examples < global_batch:
            raise DataError(f"the data has {num_examples} examples, fewer than one global batch of {global_batch}")
        self.num_examples, self.global_batch, self.seed = num_examples, global_batch, seed
        self.batches_per_epoch = num_examples // global_batch  # drop_last: the tail waits for the next epoch
        self.epoch, self.position = 0, 0
        self._permutation: list[int] | None = None

    def permutation(self, epoch: int) -> list[int]:
        """The order of all indices in `epoch`, from a generator seeded by (seed, epoch)."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(self.num_examples, generator=generator).tolist()

    def next_global_indices(self) -> list[int]:
        """The next global batch; rolls into the next epoch after the last full batch."""
        if self._permutation is None:
            self._permutation = self.permutation(self.epoch)
        start = self.position * self.global_batch
        indices = self._permutation[start : start + self.global_batch]
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.epoch, self.position, self._permutation = self.epoch + 1, 0, None
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position,
                "num_examples": self.num_examples, "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        for name in ("num_examples", "global_batch"):
            if name in state and state[name] != getattr(self, name):
                raise DataError(f"the checkpoint was taken with {name} {state[name]}, "
                                f"but this run has {getattr(self, name)}: the data order cannot resume")
        self.epoch, self.position, self._permutation = int(state["epoch"]), int(state["position"]), None


def shard(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Process `rank`'s contiguous slice of a global batch: indices[rank*b:(rank+1)*b]."""
    if len(indices) % world_size:
        raise ValueError(f"a global batch of {len(indices)} does not split over {world_size} processes")
    per_process = len(indices) // world_size
    return list(indices[rank * per_process : (rank + 1) * per_process])


def flip_mask(seed: int, step: int, indices: Sequence[int]) -> list[bool]:
    """A fair coin per (seed, step, global example index): whether to mirror that example.

    Keyed by the global index rather than the position in a process's batch, so it does not
    depend on how the batch is split; keyed by the step, so an example is not mirrored the
    same way every epoch.
    """
    return [bool(mix_seed(seed, step, index) & 1) for index in indices]
