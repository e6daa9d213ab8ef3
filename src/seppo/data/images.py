"""Decode image and video bytes into RGB PIL images, turning every fault into a `DataError`.

Real preference sets hold odd files: CMYK JPEGs, palette PNGs with a transparent colour,
16-bit greyscale scans, truncated downloads and the occasional decompression bomb. Each
valid-but-unusual image is converted to plain RGB here, so nothing downstream has to care;
each fault raises `DataError` naming `where` (a shard row, a metadata line, a file).
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Union

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seppo.errors import DataError

Source = Union[bytes, str, Path]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
VIDEO_EXTENSIONS = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"}

# Modes that carry an alpha channel; they are composited on white, as a viewer shows them.
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def decode_image(
    data: Source, *, where: str, min_size: int = 8, max_pixels: int = 8192 * 8192
) -> Image.Image:
    """Decode `data` (encoded bytes, or a file path) into an RGB image.

    The size is checked from the header before any pixels are decoded, so a bomb costs
    nothing. Raises `DataError` naming `where` for unreadable, truncated, tiny or huge images.
    """
    image = _open(data, where)
    width, height = image.size
    if width * height > max_pixels:
        raise DataError(
            f"{where}: image is {width}x{height} pixels, over the limit of {max_pixels}, "
            "a decompression bomb or a mislabelled file"
        )
    if min(width, height) < min_size:
        raise DataError(f"{where}: image is {width}x{height}, smaller than {min_size} on a side")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
        return to_rgb(image, where=where)
    except DataError:
        raise
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for bad data
        raise DataError(f"{where}: image data is corrupt or truncated ({_short(error)})") from None


def to_rgb(image: Image.Image, *, where: str = "") -> Image.Image:
    """Convert any PIL mode to RGB, scaling high-bit-depth data instead of clipping it."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16"):
        # 16-bit: 65535 must map to 255, which PIL's own convert("L") gets wrong (it clips).
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return _grey_to_rgb(grey)
    if mode == "I":
        return _grey_to_rgb(_scale_int(np.asarray(image, dtype=np.float64)))
    if mode == "F":
        return _grey_to_rgb(_scale_float(np.asarray(image, dtype=np.float64)))
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...
    except ValueError:
        raise DataError(f"{where}: unsupported image mode {mode!r}") from None


def decode_video(
    source: Source, *, where: str, num_frames: int, stride: int = 1, min_size: int = 8
) -> list[Image.Image]:
    """Read `num_frames` frames, `stride` apart from the first, as RGB images.

    `source` is a video file (mp4 and friends through imageio's ffmpeg plugin, gif through
    pillow), its bytes, or a folder of frame images taken in natural name order. Decoding
    stops once enough frames are read. Too few frames, or none, raise `DataError`.
    """
    needed = (num_frames - 1) * stride + 1
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        frames = _frames_from_folder(Path(source), where, needed, min_size)
    else:
        frames = _frames_from_file(source, where, needed, min_size)
    if len(frames) < needed:
        raise DataError(
            f"{where}: video has {len(frames)} frames, needs {needed} "
            f"({num_frames} frames, stride {stride})"
        )
    picked = frames[::stride][:num_frames]
    if len({frame.size for frame in picked}) > 1:
        raise DataError(f"{where}: video frames differ in size")
    return picked


def is_video_path(path: Path) -> bool:
    """A folder of frames or a file with a video extension (gif is ambiguous: not here)."""
    return path.is_dir() or path.suffix.lower() in VIDEO_EXTENSIONS


def _open(data: Source, where: str) -> Image.Image:
    """Open lazily: reads the header only, so the size can be checked before decoding."""
    with warnings.catch_warnings():
        # We apply our own `max_pixels`; PIL's warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                return Image.open(io.BytesIO(bytes(data)))
            return Image.open(Path(data))
        except Image.DecompressionBombError as error:  # PIL's own header check, at 2x its limit
            raise DataError(f"{where}: image is too large to decode, a decompression bomb "
                            f"or a mislabelled file ({_short(error)})") from None
        except FileNotFoundError:
            raise DataError(f"{where}: file not found: {data}") from None
        except UnidentifiedImageError:
            what = "bytes are" if isinstance(data, bytes) else f"{data} is"
            raise DataError(f"{where}: {what} not a readable image") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{where}: cannot read image ({_short(error)})") from None


def _frames_from_folder(folder: Path, where: str, needed: int, min_size: int) -> list[Image.Image]:
    names = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
    )
    return [
        decode_image(path, where=f"{where} frame {path.name}", min_size=min_size)
        for path in names[:needed]
    ]


def _frames_from_file(source: Source, where: str, needed: int, min_size: int) -> list[Image.Image]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        uri, extension = bytes(source), _sniff_video_extension(bytes(source))
    else:
        uri, extension = str(source), Path(source).suffix.lower()
        if not Path(source).exists():
            raise DataError(f"{where}: file not found: {source}")
    plugin = "pillow" if extension == ".gif" else "FFMPEG"
    frames: list[Image.Image] = []
    try:
        for array in iio.imiter(uri, plugin=plugin, extension=extension):
            frame = to_rgb(Image.fromarray(np.asarray(array)), where=where)
            if min(frame.size) < min_size:
                raise DataError(f"{where}: video frames are {frame.size[0]}x{frame.size[1]}, "
                                f"smaller than {min_size} on a side")
            frames.append(frame)
            if len(frames) >= needed:
                break
    except DataError:
        raise
    except Exception as error:  # imageio/ffmpeg raise OSError, RuntimeError, ... for bad files
        if not frames:
            raise DataError(f"{where}: video has no readable frames ({_short(error)})") from None
        # A stream cut short after some frames: the length check reports it.
    return frames


def _sniff_video_extension(data: bytes) -> str:
    return ".gif" if data[:4] == b"GIF8" else ".mp4"


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")


def _scale_int(values: np.ndarray) -> np.ndarray:
    """32-bit integer pixels: 8-bit data as is, 16-bit data scaled, anything else stretched."""
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if low >= 0 and high <= 255:
        return values
    if low >= 0 and high <= 65535:
        return values / 257.0
    return _stretch(values, low, high)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Float pixels: [0, 1] data scaled to 255, [0, 255] as is, anything else stretched."""
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if low >= 0 and high <= 1:
        return values * 255.0
    if low >= 0 and high <= 255:
        return values
    return _stretch(values, low, high)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


def _natural_key(path: Path) -> list:
    """frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _short(error: Exception) -> str:
    """The first line of an error, so messages stay one line."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
