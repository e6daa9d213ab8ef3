"""Image and video decoding: unusual-but-valid images become sensible RGB, faults name `where`."""

import io
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from seppo.data.images import decode_image, decode_video
from seppo.data.transforms import ImageTransform, transform_video
from seppo.errors import DataError


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real 1-bit PNG of zeros: 50 MB of pixels that compress to ~50 KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- unusual but valid ------------------------------------------------------------------------


def test_cmyk_decodes_to_rgb():
    image = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), where="x")
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((8, 8))
    assert red > 200 and green < 50 and blue < 50


def test_palette_with_transparency_composites_on_white():
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    data = encode(image, transparency=0)  # palette entry 0 (black) is transparent
    rgb = decode_image(data, where="x")
    assert rgb.getpixel((5, 5)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)


def test_rgba_half_transparent_blends_with_white():
    rgb = decode_image(encode(Image.new("RGBA", (16, 16), (0, 0, 0, 128))), where="x")
    assert all(abs(c - 127) <= 1 for c in rgb.getpixel((3, 3)))


def test_la_transparent_is_white():
    assert decode_image(encode(Image.new("LA", (16, 16), (0, 0))), where="x").getpixel((1, 1)) == (255, 255, 255)


def test_16_bit_greyscale_scales_instead_of_clipping():
    values = np.full((16, 16), 32896, dtype=np.uint16)  # 32896 / 257 = 128
    values[0, 0] = 65535
    rgb = decode_image(encode(Image.fromarray(values)), where="x")
    assert rgb.getpixel((5, 5)) == (128, 128, 128)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)


def test_float_image_in_unit_range_scales_to_255():
    rgb = decode_image(encode(Image.fromarray(np.full((16, 16), 0.5, np.float32)), "TIFF"), where="x")
    assert rgb.getpixel((2, 2)) == (128, 128, 128)


# --- faults -----------------------------------------------------------------------------------

GOOD = encode(Image.new("RGB", (32, 32), (10, 20, 30)))

FAULTS = [
    ("truncated PNG", GOOD[: len(GOOD) // 2], "corrupt or truncated"),
    ("garbage", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "not a readable image"),
    ("1x1 image", encode(Image.new("RGB", (1, 1))), "1x1, smaller than 8"),
    ("empty bytes", b"", "not a readable image"),
]


@pytest.mark.parametrize("name,data,message", FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_raise_data_error_naming_where(name, data, message):
    with pytest.raises(DataError, match=message) as caught:
        decode_image(data, where="train-0001.parquet row 17 jpg_0")
    assert str(caught.value).startswith("train-0001.parquet row 17 jpg_0: ")
    assert "\n" not in str(caught.value)


def test_decompression_bomb_is_refused_from_the_header():
    data = bomb_png()
    assert len(data) < 200_000
    with pytest.raises(DataError, match=r"shard row 3: image is too large to decode, a decompression bomb"):
        decode_image(data, where="shard row 3")
    # Below PIL's own limit, our `max_pixels` applies, still before any pixel is decoded.
    small_bomb = bomb_png(4000, 4000)
    with pytest.raises(DataError, match=r"shard row 4: image is 4000x4000 pixels, over the limit of 1000000"):
        decode_image(small_bomb, where="shard row 4", max_pixels=1000 * 1000)


def test_unreadable_path(tmp_path):
    with pytest.raises(DataError, match="meta line 2: file not found: .*nope.png"):
        decode_image(tmp_path / "nope.png", where="meta line 2")


# --- video ------------------------------------------------------------------------------------


def frames_array(count: int) -> np.ndarray:
    frames = np.zeros((count, 32, 32, 3), np.uint8)
    frames[..., 0] = (np.arange(count) * 40)[:, None, None]  # red encodes the frame number
    return frames


def test_gif_frames_with_stride(tmp_path):
    path = tmp_path / "clip.gif"
    iio.imwrite(path, frames_array(5), plugin="pillow")
    frames = decode_video(path, where="clip", num_frames=3, stride=2)
    assert [f.getpixel((0, 0))[0] for f in frames] == [0, 80, 160]


def test_mp4_bytes_decode():
    data = iio.imwrite("<bytes>", frames_array(4), extension=".mp4", plugin="FFMPEG", fps=4)
    frames = decode_video(data, where="clip", num_frames=4)
    assert len(frames) == 4 and frames[0].size == (32, 32) and frames[0].mode == "RGB"


def test_frame_folder_uses_natural_order(tmp_path):
    for i in (1, 2, 10):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(tmp_path / f"frame_{i}.png")
    assert [f.getpixel((0, 0))[0] for f in decode_video(tmp_path, where="v", num_frames=3)] == [1, 2, 10]


def test_video_faults(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="v1: video has 0 frames, needs 4"):
        decode_video(tmp_path / "empty", where="v1", num_frames=4)
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(DataError, match="v2: video has no readable frames"):
        decode_video(tmp_path / "zero.mp4", where="v2", num_frames=4)
    iio.imwrite(tmp_path / "short.gif", frames_array(2), plugin="pillow")
    with pytest.raises(DataError, match=r"v3: video has 2 frames, needs 5 \(3 frames, stride 2\)"):
        decode_video(tmp_path / "short.gif", where="v3", num_frames=3, stride=2)


# --- transforms -------------------------------------------------------------------------------


def test_transform_resizes_crops_and_scales():
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 32, 32))  # left half blue
    out = ImageTransform(16)(image)
    assert out.pixels.shape == (3, 16, 16)
    assert out.original_size == (32, 64) and out.crop_top_left == (0, 8)
    assert out.pixels.min() >= -1 and out.pixels.max() <= 1
    assert out.pixels[0, 8, 0] == -1 and out.pixels[2, 8, 0] == 1  # left edge blue
    flipped = ImageTransform(16)(image, flip=True)
    assert torch.equal(flipped.pixels, out.pixels.flip(-1))
    assert flipped.crop_top_left == out.crop_top_left


def test_random_crop_follows_the_generator_and_video_shares_it():
    transform = ImageTransform(8, crop="random")
    frames = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 40, 3), np.uint8)) for i in range(3)]
    a = transform_video(frames, transform, generator=torch.Generator().manual_seed(1))
    b = transform_video(frames, transform, generator=torch.Generator().manual_seed(1))
    assert a.pixels.shape == (3, 3, 8, 8) and torch.equal(a.pixels, b.pixels)
    single = transform(frames[2], generator=torch.Generator().manual_seed(1))
    assert torch.equal(single.pixels, a.pixels[2]) and single.crop_top_left == a.crop_top_left


def test_greyscale_channel():
    assert ImageTransform(8, channels=1)(Image.new("RGB", (8, 8), (255, 255, 255))).pixels.shape == (1, 8, 8)
