"""The latent and text-embedding cache: encode every winner (and loser) once, reuse it after.

A cache lives in `cache_root/<sha of key>/` as safetensors shards plus an `index.json`. The
index is written last and the folder is built under a temporary name, then renamed, so a
folder with an index is always complete and a killed build is never mistaken for one.

The encoders come from the backbone as plain functions: this module imports no model code.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from seppo.data.examples import Example
from seppo.data.records import DataSummary
from seppo.data.transforms import ImageTransform, transform_visual
from seppo.errors import DataError

INDEX = "index.json"
FORMAT_VERSION = 1
IN_MEMORY_LIMIT_BYTES = 2 << 30  # caches up to 2 GiB are loaded whole; bigger ones are memory-mapped


def cache_key_hash(key: dict) -> str:
    """A stable short sha of the key's JSON (sorted keys, so dict order does not matter)."""
    text = json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def build_cache(
    examples: Iterable[Example],
    *,
    cache_root: Path,
    key: dict,
    transform: ImageTransform,
    encode_images: Callable[[torch.Tensor], torch.Tensor],
    encode_prompts: Callable[[list[str]], dict[str, torch.Tensor]],
    batch_size: int = 16,
    with_losers: bool = False,
    both_flips: bool = False,
    shard_size: int = 1024,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    summary: DataSummary | None = None,
    progress: bool = True,
) -> "CachedDataset":
    """Encode `examples` into `cache_root/<hash of key>/`, or reuse that folder if complete.

    `key` must name everything that changes the encodings (model id, data path, transform
    settings, dtype...). `encode_images` gets (B, C, H, W) pixels, or (B, F, C, H, W) for
    videos; `encode_prompts` returns tensors with the batch first. `both_flips` also stores
    each mirrored image's encoding. Random crops draw from a generator seeded by `seed`.
    `summary` (or `examples.summary`, if the examples carry one) is read after the pass.
    """
    folder = Path(cache_root) / cache_key_hash(key)
    if (folder / INDEX).is_file():
        return CachedDataset(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = folder.parent / f".building-{folder.name}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        writer = _ShardWriter(building, shard_size)
        prompts, wheres = [], []
        generator = torch.Generator().manual_seed(seed)
        bar = tqdm(desc="encoding cache", unit="example", disable=not progress)
        for batch in _batches(examples, batch_size):
            tensors = _encode_batch(batch, transform, encode_images, encode_prompts, generator,
                                    with_losers, both_flips, dtype)
            writer.add(tensors)
            prompts += [e.prompt for e in batch]
            wheres += [e.where for e in batch]
            bar.update(len(batch))
        bar.close()
        writer.close()
        if not prompts:
            raise DataError(f"cache for {key.get('data', 'the data')}: the source yielded no examples")
        summary = summary or getattr(examples, "summary", None)
        index = {
            "format": FORMAT_VERSION, "count": len(prompts), "shard_sizes": writer.sizes,
            "prompts": prompts, "wheres": wheres, "key": key,
            "has_losers": with_losers, "has_flips": both_flips, "dtype": str(dtype),
            "summary": summary.as_dict() if summary is not None else None,
        }
        (building / INDEX).write_text(json.dumps(index, default=str))  # last: marks it complete
        try:
            os.replace(building, folder)
        except OSError:
            if not (folder / INDEX).is_file():  # not another process finishing first
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)  # gone after the rename; removes a failed build
    return CachedDataset(folder)


def _batches(examples: Iterable[Example], size: int) -> Iterator[list[Example]]:
    batch: list[Example] = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _encode_batch(batch, transform, encode_images, encode_prompts, generator, with_losers, both_flips, dtype):
    """Tensors for one batch, each with the batch first, keyed by their names in the shards."""
    winners = [transform_visual(e.winner, transform, generator=generator) for e in batch]
    tensors = {
        "original_size": torch.tensor([w.original_size for w in winners], dtype=torch.int64),  # (B, 2)
        "crop_top_left": torch.tensor([w.crop_top_left for w in winners], dtype=torch.int64),  # (B, 2)
    }
    tensors.update(_encode_pixels("winner", torch.stack([w.pixels for w in winners]), encode_images, both_flips))
    if with_losers:
        missing = [e.where for e in batch if e.loser is None]
        if missing:
            raise DataError(f"{missing[0]}: no loser, but this method needs pairs")
        losers = [transform_visual(e.loser, transform, generator=generator).pixels for e in batch]
        tensors.update(_encode_pixels("loser", torch.stack(losers), encode_images, both_flips))
    with torch.no_grad():
        for name, value in encode_prompts([e.prompt for e in batch]).items():
            tensors[f"cond.{name}"] = value
    return {name: _stored(value, dtype) for name, value in tensors.items()}


def _encode_pixels(name, pixels, encode_images, both_flips) -> dict[str, torch.Tensor]:
    """Encode (B, [F,] C, H, W) pixels, and their mirror images in the same call if `both_flips`."""
    with torch.no_grad():
        if not both_flips:
            return {name: encode_images(pixels)}
        both = torch.cat([pixels, pixels.flip(-1)])  # (2B, ...): plain, then mirrored
        plain, mirrored = encode_images(both).chunk(2)  # (B, ...) each
        return {name: plain, f"{name}_flip": mirrored}


def _stored(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Floating tensors in the cache dtype; integer ones (sizes, token ids) as they are."""
    value = value.detach().cpu()
    return (value.to(dtype) if value.is_floating_point() else value).contiguous()


class _ShardWriter:
    """Collects batches and writes `shard-00000.safetensors`, ... of `shard_size` rows each."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder, self.shard_size = folder, shard_size
        self.pending: list[dict[str, torch.Tensor]] = []
        self.pending_rows = 0
        self.sizes: list[int] = []

    def add(self, tensors: dict[str, torch.Tensor]) -> None:
        self.pending.append(tensors)
        self.pending_rows += len(next(iter(tensors.values())))
        while self.pending_rows >= self.shard_size:
            self._flush(self.shard_size)

    def close(self) -> None:
        if self.pending_rows:
            self._flush(self.pending_rows)

    def _flush(self, rows: int) -> None:
        joined = {name: torch.cat([t[name] for t in self.pending]) for name in self.pending[0]}  # (pending, ...)
        shard = {name: value[:rows].contiguous() for name, value in joined.items()}
        save_file(shard, str(self.folder / f"shard-{len(self.sizes):05d}.safetensors"))
        self.sizes.append(rows)
        rest = {name: value[rows:] for name, value in joined.items()}
        self.pending_rows -= rows
        self.pending = [rest] if self.pending_rows else []


class CachedDataset:
    """A complete cache folder: encodings by index, plus prompts and the data summary."""

    def __init__(self, folder: Path, *, in_memory: bool | None = None):
        self.folder = Path(folder)
        index_path = self.folder / INDEX
        if not index_path.is_file():
            raise DataError(f"{self.folder}: not a complete latent cache (no {INDEX})")
        index = json.loads(index_path.read_text())
        self.prompts: list[str] = index["prompts"]
        self.wheres: list[str] = index["wheres"]
        self.key: dict = index["key"]
        self.has_losers: bool = index["has_losers"]
        self.has_flips: bool = index["has_flips"]
        self.summary: dict | None = index["summary"]
        self._starts = [0]
        for size in index["shard_sizes"]:
            self._starts.append(self._starts[-1] + size)
        paths = [self.folder / f"shard-{i:05d}.safetensors" for i in range(len(index["shard_sizes"]))]
        if in_memory is None:
            in_memory = sum(p.stat().st_size for p in paths) <= IN_MEMORY_LIMIT_BYTES
        self._shards = [_Shard(p, in_memory) for p in paths]
        self.cond_names = sorted(n[len("cond."):] for n in self._shards[0].names if n.startswith("cond."))

    def __len__(self) -> int:
        return self._starts[-1]

    def get(self, indices: Sequence[int], flips: Sequence[bool] | None = None) -> dict:
        """A batch: winner (B, ...), loser (B, ...) if cached, cond {name: (B, ...)}, sizes, prompts.

        `flips[i]` picks the mirrored encoding of item i; the cache must hold flips for that.
        """
        flips = list(flips) if flips is not None else [False] * len(indices)
        if any(flips) and not self.has_flips:
            raise ValueError("flips requested from a cache built without both_flips")
        batch = {
            "winner": self._gather(indices, ["winner_flip" if f else "winner" for f in flips]),
            "cond": {n: self._gather(indices, [f"cond.{n}"] * len(indices)) for n in self.cond_names},
            "original_size": self._gather(indices, ["original_size"] * len(indices)),
            "crop_top_left": self._gather(indices, ["crop_top_left"] * len(indices)),
            "prompts": [self.prompts[i] for i in indices],
        }
        if self.has_losers:
            batch["loser"] = self._gather(indices, ["loser_flip" if f else "loser" for f in flips])
        return batch

    def _gather(self, indices: Sequence[int], names: Sequence[str]) -> torch.Tensor:
        rows = []
        for index, name in zip(indices, names):
            if not 0 <= index < len(self):
                raise IndexError(f"cache index {index} out of range for {len(self)} examples")
            shard = bisect.bisect_right(self._starts, index) - 1
            rows.append(self._shards[shard].row(name, index - self._starts[shard]))
        return torch.stack(rows)  # (B, ...)


class _Shard:
    """One safetensors file, loaded whole or read row by row through a memory map."""

    def __init__(self, path: Path, in_memory: bool):
        self.handle = safe_open(str(path), framework="pt")
        self.names = set(self.handle.keys())
        self.tensors = {n: self.handle.get_tensor(n) for n in self.names} if in_memory else None

    def row(self, name: str, offset: int) -> torch.Tensor:
        if self.tensors is not None:
            return self.tensors[name][offset]
        return self.handle.get_slice(name)[offset : offset + 1][0]
