"""The reference pool P = [θ_0, θ_1, …] and the reference draw (DESIGN.md §1, Algorithm 1).

Snapshots are immutable copies of the trainable weights: LoRA adapter state (a few MB) or
the full UNet's weights, on CPU or on disk (`storage`). Training the policy never changes
them. `draw` picks the reference index j by strategy:

| strategy  | j                          |
|-----------|----------------------------|
| `uniform` | j ~ U{0..k−1} (SePPO)      |
| `initial` | j = 0 (DITTO-style)        |
| `latest`  | j = k−1 (SPIN-style)       |

where k = len(P) during iteration k. Draws come from a generator seeded by (seed, draw
number), identical on every process, so no generator state needs saving beyond the count.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from seppo import rng

SNAPSHOT = "theta-{j}.safetensors"  # θ_j in the run's pool/


def snapshot_files(folder: Path) -> dict[int, Path]:
    """The snapshots in a pool folder, {j: folder/theta-j.safetensors}, by j."""
    prefix, suffix = SNAPSHOT.split("{j}")
    found = {int(f.name[len(prefix):-len(suffix)]): f for f in Path(folder).glob(SNAPSHOT.format(j="*"))}
    return dict(sorted(found.items()))


class ReferencePool:
    """Snapshots live in `folder` (the run's `pool/`), written once each, atomically; with
    storage "cpu" they are also kept in memory. A checkpoint records only the pool's size and
    draw history (`state_dict`), since snapshots never change once written."""

    def __init__(self, *, seed: int, folder: Path, storage: str = "cpu"):
        self.seed = seed
        self.storage = storage
        self.folder = Path(folder)
        self._snapshots: list[dict[str, torch.Tensor] | Path] = []
        self.draws: list[int] = []  # history of drawn indices, one per draw

    def __len__(self) -> int:
        return len(self._snapshots)

    def _path(self, j: int) -> Path:
        return self.folder / SNAPSHOT.format(j=j)

    def append(self, state: dict[str, torch.Tensor]) -> None:
        """Add θ_k. The state is copied, so later training cannot change it."""
        frozen = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
        path = self._path(len(self._snapshots))
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # each process its own: all ranks write θ_k
        save_file(frozen, str(tmp))
        tmp.replace(path)
        self._snapshots.append(path if self.storage == "disk" else frozen)

    def state(self, j: int) -> dict[str, torch.Tensor]:
        snap = self._snapshots[j]
        return load_file(str(snap)) if isinstance(snap, Path) else snap

    def bytes_per_snapshot(self) -> int:
        if not self._snapshots:
            return 0
        return sum(v.numel() * v.element_size() for v in self.state(0).values())

    def draw(self, strategy: str) -> int:
        """Draw j among the entries held now; recorded in `draws`."""
        k = len(self._snapshots)
        if k == 0:
            raise RuntimeError("the reference pool is empty: append θ_0 first")
        if strategy == "uniform":
            g = rng.generator(self.seed, "reference", len(self.draws), 0)
            j = int(torch.randint(k, (), generator=g))
        elif strategy == "initial":
            j = 0
        elif strategy == "latest":
            j = k - 1
        else:
            raise ValueError(f"unknown reference strategy {strategy!r}")
        self.draws.append(j)
        return j

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        return {"size": len(self), "draws": list(self.draws)}

    def load_state_dict(self, state: dict) -> None:
        """Reload the first `size` snapshots from the folder and the draw history."""
        self._snapshots = []
        for j in range(state["size"]):
            snap = load_file(str(self._path(j)))
            self._snapshots.append(self._path(j) if self.storage == "disk" else snap)
        self.draws = list(state["draws"])
