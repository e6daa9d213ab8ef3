"""The latent cache: reuse by key, atomic builds, flips, dtypes and sharding."""

import pytest
import torch
from PIL import Image

from seppo.data.cache import CachedDataset, build_cache
from seppo.data.examples import Example
from seppo.data.transforms import ImageTransform
from seppo.errors import DataError


class CountingEncoder:
    """A stand-in VAE: 2x2 average pooling, counting calls; can fail on the n-th call."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls, self.fail_on_call = 0, fail_on_call

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("killed mid-build")
        flat = pixels.flatten(0, -4)  # (B[*F], C, H, W)
        pooled = torch.nn.functional.avg_pool2d(flat, 2)
        return pooled.view(*pixels.shape[:-2], *pooled.shape[-2:])  # (B, [F,] C, H/2, W/2)


def encode_prompts(prompts: list[str]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([float(len(p)) for p in prompts])
    return {"hidden": lengths[:, None, None].expand(-1, 3, 4).clone(), "ids": torch.arange(len(prompts))}


def examples(count: int, *, losers: bool = False) -> list[Example]:
    def image(i):  # left half coloured by i, right half white: a flip is visible
        img = Image.new("RGB", (12, 8), (255, 255, 255))
        img.paste((i * 10, 0, 0), (0, 0, 6, 8))
        return img

    return [Example(prompt="p" * i, winner=image(i), loser=image(i + 1) if losers else None, where=f"row {i}")
            for i in range(count)]


def build(tmp_path, data, encoder, **kwargs):
    settings = dict(cache_root=tmp_path, key={"model": "tiny", "data": "d"}, transform=ImageTransform(8),
                    encode_images=encoder, encode_prompts=encode_prompts, batch_size=4, progress=False)
    return build_cache(data, **{**settings, **kwargs})


def test_second_build_with_same_key_encodes_nothing(tmp_path):
    first = CountingEncoder()
    cache = build(tmp_path, examples(10), first, shard_size=4)
    assert first.calls == 3 and len(cache) == 10
    assert sorted(p.name for p in cache.folder.iterdir()) == [
        "index.json", "shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors"]
    second = CountingEncoder()
    again = build(tmp_path, examples(10), second, shard_size=4)
    assert second.calls == 0 and again.folder == cache.folder
    batch = again.get([9, 0, 5])
    assert batch["prompts"] == ["p" * 9, "", "p" * 5]
    assert batch["winner"].shape == (3, 3, 4, 4)
    assert batch["cond"]["hidden"][:, 0, 0].tolist() == [9.0, 0.0, 5.0]
    assert batch["cond"]["ids"].dtype == torch.int64
    assert batch["original_size"].tolist() == [[8, 12]] * 3 and batch["crop_top_left"].tolist() == [[0, 2]] * 3
    assert "loser" not in batch


def test_changed_key_rebuilds(tmp_path):
    build(tmp_path, examples(4), CountingEncoder())
    encoder = CountingEncoder()
    other = build(tmp_path, examples(4), encoder, key={"model": "tiny", "data": "d", "resolution": 16})
    assert encoder.calls == 1 and len(list(tmp_path.iterdir())) == 2 and len(other) == 4


def test_killed_build_leaves_no_complete_cache(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path, examples(12), CountingEncoder(fail_on_call=2), shard_size=4)
    assert list(tmp_path.iterdir()) == []  # neither a half folder nor a stray temp folder
    encoder = CountingEncoder()
    assert len(build(tmp_path, examples(12), encoder)) == 12 and encoder.calls == 3


def test_flips_return_the_mirrored_encoding(tmp_path):
    cache = build(tmp_path, examples(5, losers=True), CountingEncoder(), both_flips=True, with_losers=True)
    assert cache.has_flips and cache.has_losers
    plain, flipped = cache.get([1, 2], flips=[False, False]), cache.get([1, 2], flips=[True, False])
    assert torch.equal(flipped["winner"][0], plain["winner"][0].flip(-1))
    assert torch.equal(flipped["winner"][1], plain["winner"][1])
    assert torch.equal(flipped["loser"][0], plain["loser"][0].flip(-1))
    assert not torch.equal(plain["winner"][0], plain["winner"][0].flip(-1))
    unflipped = build(tmp_path, examples(5), CountingEncoder(), key={"other": 1})
    with pytest.raises(ValueError, match="both_flips"):
        unflipped.get([0], flips=[True])


def test_float16_and_memory_mapped_reads_agree(tmp_path):
    cache = build(tmp_path, examples(6), CountingEncoder(), dtype=torch.float16, shard_size=4)
    assert cache.get([0])["winner"].dtype == torch.float16
    mapped = CachedDataset(cache.folder, in_memory=False)
    assert torch.equal(mapped.get([5, 1])["winner"], cache.get([5, 1])["winner"])


def test_video_examples_encode_as_five_dims(tmp_path):
    clip = [Image.new("RGB", (8, 8), (i * 50, 0, 0)) for i in range(3)]
    cache = build(tmp_path, [Example("v", clip), Example("w", clip)], CountingEncoder())
    assert cache.get([0, 1])["winner"].shape == (2, 3, 3, 4, 4)  # (B, F, C, h, w)


def test_missing_loser_and_empty_source_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="row 0: no loser"):
        build(tmp_path, examples(2), CountingEncoder(), with_losers=True)
    with pytest.raises(DataError, match="yielded no examples"):
        build(tmp_path, [], CountingEncoder())
    assert list(tmp_path.iterdir()) == []
