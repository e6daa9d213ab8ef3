"""Winner sources: Pick-a-Pic parquet shards, an imagefolder, a saved `datasets` dataset,
and the embedded Pick-a-Digit pairs.

Each source streams `Example`s, decoding one record at a time under a `SkipPolicy`
(seppo.data.records). `open_examples(cfg)` opens the one `cfg.data.source` names, through
`SOURCES`, with its keyword arguments taken from the config:

| data.source   | reads                                                     |
|---------------|-----------------------------------------------------------|
| `pickapic`    | parquet shards (`data.path`: file, folder or glob)        |
| `imagefolder` | a Hugging Face image folder with `metadata.jsonl`          |
| `disk`        | a `datasets` dataset saved with `save_to_disk`             |
| `embedded`    | Pick-a-Digit in the cache (seppo.paths), as Pick-a-Pic parquet; `seppo train` builds it first (seppo.embedded.world) |
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq
from PIL import Image

from seppo import paths
from seppo.config import Config
from seppo.data.examples import Example
from seppo.data.images import decode_image, decode_video, is_video_path, to_rgb
from seppo.data.records import TIE, GuardedExamples, Record, SkipPolicy, examples, guard_bad_records
from seppo.errors import DataError

PICKAPIC_BATCH_ROWS = 64  # rows per parquet read: a few MB of JPEGs, never the whole shard


# ---------------------------------------------------------------------------------------------
# Pick-a-Pic parquet shards
# ---------------------------------------------------------------------------------------------


def pickapic_source(
    path: str,
    *,
    pairs: bool = False,
    caption_column: str = "caption",
    num_frames: int | None = None,
    stride: int = 1,
    min_size: int = 8,
    policy: SkipPolicy | None = None,
) -> Iterator[Example]:
    """Stream Pick-a-Pic winners (and losers if `pairs`) from a parquet file, folder or glob.

    label_0 = 1 means jpg_0 won, 0 means jpg_1 won, 0.5 is a tie and is dropped. With
    `num_frames`, jpg_0/jpg_1 hold videos (animated GIF or mp4 bytes), read with `decode_video`.
    """
    shards = parquet_shards(path)  # resolved now, so a wrong path fails before any training

    def records() -> Iterator[Record]:
        for shard in shards:
            columns = [caption_column, "jpg_0", "jpg_1", "label_0"]
            try:
                reader = pq.ParquetFile(shard)
            except Exception as error:
                raise DataError(f"{shard.name}: not a readable parquet file ({error})") from None
            names = reader.schema_arrow.names
            for column in columns:
                if column not in names:
                    raise DataError(f"{shard.name}: missing column '{column}' (has: {', '.join(names)})")
            row = 0
            for batch in reader.iter_batches(batch_size=PICKAPIC_BATCH_ROWS, columns=columns):
                for values in zip(*(batch.column(c).to_pylist() for c in columns)):
                    yield _pickapic_record(f"{shard.name} row {row}", *values, pairs, min_size, num_frames, stride)
                    row += 1

    return examples(records(), policy)


def _pickapic_record(where, caption, jpg_0, jpg_1, label_0, pairs, min_size, num_frames=None, stride=1) -> Record:
    def load():
        if label_0 == 0.5:
            return TIE
        if label_0 not in (0, 1):
            raise DataError(f"{where}: label_0 is {label_0}, expected 0, 0.5 or 1")
        images = {"jpg_0": jpg_0, "jpg_1": jpg_1}
        winner, loser = ("jpg_0", "jpg_1") if label_0 == 1 else ("jpg_1", "jpg_0")

        def image(column):
            payload = _image_payload(images[column], f"{where} {column}")
            if num_frames is not None:
                return decode_video(payload, where=f"{where} {column}", num_frames=num_frames, stride=stride,
                                    min_size=min_size)
            return decode_image(payload, where=f"{where} {column}", min_size=min_size)

        return Example(prompt=_caption(caption, where), winner=image(winner),
                       loser=image(loser) if pairs else None, where=where)

    return Record(where, load)


def parquet_shards(path: str) -> list[Path]:
    """A parquet file, every *.parquet in a folder, or a glob; sorted, and never empty."""
    return matching_files(path, "*.parquet", missing=f"{path}: no such file or folder",
                          empty=f"{path}: no parquet shards found")


def matching_files(path: str | Path, pattern: str, *, missing: str, empty: str) -> list[Path]:
    """A file, every `pattern` file in a folder, or a glob's matches, sorted by name;
    `DataError(missing)` for a path that is none of these, `DataError(empty)` for no match."""
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)))
    elif Path(path).is_dir():
        files = sorted(Path(path).glob(pattern))
    elif Path(path).is_file():
        files = [Path(path)]
    else:
        raise DataError(missing)
    if not files:
        raise DataError(empty)
    return files


# ---------------------------------------------------------------------------------------------
# Hugging Face imagefolder (metadata.jsonl)
# ---------------------------------------------------------------------------------------------


def imagefolder_source(
    folder: str,
    *,
    caption_column: str = "text",
    file_column: str = "file_name",
    num_frames: int | None = None,
    stride: int = 1,
    min_size: int = 8,
    policy: SkipPolicy | None = None,
) -> Iterator[Example]:
    """Stream an imagefolder: `metadata.jsonl` rows naming files relative to `folder`.

    A file is a video when it is a folder of frames or has a video extension, or is a gif
    while `num_frames` is set; videos need `num_frames` (and take every `stride`-th frame).
    """
    root = Path(folder)
    metadata = root / "metadata.jsonl"
    if not metadata.is_file():
        raise DataError(f"{folder}: no metadata.jsonl (expected a Hugging Face imagefolder)")
    label = f"{root.name}/metadata.jsonl"

    def records() -> Iterator[Record]:
        with open(metadata, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _imagefolder_record(f"{label} line {number}", line, root, caption_column,
                                              file_column, num_frames, stride, min_size)

    return examples(records(), policy)


def _imagefolder_record(where, line, root, caption_column, file_column, num_frames, stride, min_size) -> Record:
    def load():
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: bad JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for column in (file_column, caption_column):
            if column not in row:
                raise DataError(f"{where}: no '{column}' field (has: {', '.join(row)})")
        name = row[file_column]
        path = root / str(name)
        if not path.exists():
            raise DataError(f"{where}: file {name} not found")
        where_file = f"{where} ({name})"
        video = is_video_path(path) or (num_frames is not None and path.suffix.lower() == ".gif")
        if video and num_frames is None:
            # num_frames is None exactly when the model has no motion adapter (`_clip_frames`)
            raise DataError(f"{where_file}: is a video and the model an image model; set model.motion_adapter to "
                            "train a video model")
        winner = (decode_video(path, where=where_file, num_frames=num_frames, stride=stride, min_size=min_size)
                  if video else decode_image(path, where=where_file, min_size=min_size))
        return Example(prompt=_caption(row[caption_column], where), winner=winner, where=where)

    return Record(where, load)


# ---------------------------------------------------------------------------------------------
# A `datasets` dataset saved with save_to_disk
# ---------------------------------------------------------------------------------------------


def disk_dataset_source(
    path: str,
    *,
    image_column: str = "image",
    caption_column: str = "text",
    loser_column: str | None = None,
    split: str = "train",
    min_size: int = 8,
    policy: SkipPolicy | None = None,
) -> Iterator[Example]:
    """Stream a dataset saved with `save_to_disk`; a DatasetDict is read at `split`.

    Image columns may hold PIL images, {"bytes": ..., "path": ...} dicts, bytes or paths.
    Images are decoded here, one record at a time, rather than by `datasets`.
    """
    import datasets  # heavy (about a second), and only this source needs it: imported when used

    try:
        dataset = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise DataError(f"{path}: not a dataset saved with save_to_disk ({error})") from None
    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise DataError(f"{path}: no split '{split}' (has: {', '.join(dataset)})")
        dataset = dataset[split]
    columns = [c for c in (caption_column, image_column, loser_column) if c is not None]
    for column in columns:
        if column not in dataset.column_names:
            raise DataError(f"{path}: missing column '{column}' (has: {', '.join(dataset.column_names)})")
        if isinstance(dataset.features[column], datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image(decode=False))  # we decode, per record
    name = Path(path).name

    def records() -> Iterator[Record]:
        row = 0
        for batch in dataset.select_columns(columns).iter(batch_size=64):
            for values in zip(*(batch[c] for c in columns)):
                yield _disk_record(f"{name} row {row}", dict(zip(columns, values)), caption_column,
                                   image_column, loser_column, min_size)
                row += 1

    return examples(records(), policy)


def _disk_record(where, row, caption_column, image_column, loser_column, min_size) -> Record:
    def load():
        def image(column):
            return _decode_value(row[column], f"{where} {column}", min_size)

        return Example(prompt=_caption(row[caption_column], where), winner=image(image_column),
                       loser=image(loser_column) if loser_column else None, where=where)

    return Record(where, load)


def _decode_value(value, where: str, min_size: int) -> Image.Image:
    if isinstance(value, Image.Image):
        if min(value.size) < min_size:
            raise DataError(f"{where}: image is {value.size[0]}x{value.size[1]}, smaller than {min_size} on a side")
        return to_rgb(value, where=where)
    return decode_image(_image_payload(value, where), where=where, min_size=min_size)


# ---------------------------------------------------------------------------------------------
# Shared helpers and dispatch
# ---------------------------------------------------------------------------------------------


def _caption(value, where: str) -> str:
    """str as is, bytes as UTF-8, None as the empty (unconditional) prompt."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{where}: caption is not valid UTF-8 (byte {error.start})") from None
    if isinstance(value, str):
        return value
    raise DataError(f"{where}: caption is {type(value).__name__}, expected text")


def _image_payload(value, where: str) -> bytes | str:
    """Image bytes or a path, from bytes, a path, or a datasets {"bytes", "path"} dict."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, str)) and value:
        return value
    raise DataError(f"{where}: no image (value is {type(value).__name__})")


# ---------------------------------------------------------------------------------------------
# Opening the run's source from its config
# ---------------------------------------------------------------------------------------------

# A source opener: the config → (a reader that takes the bad-record policy, the path it reads).
Opener = Callable[[Config], "tuple[Callable[[SkipPolicy], Iterator[Example]], str]"]


def _clip_frames(cfg: Config) -> int | None:
    """Frames per clip for a video model (`model.motion_adapter`); None reads images."""
    return cfg.data.num_frames if cfg.model.motion_adapter else None


def _pickapic(cfg: Config, path: str | None = None):
    d, path = cfg.data, path or cfg.data.path
    return (lambda policy: pickapic_source(path, pairs=cfg.needs_pairs, caption_column=d.caption_column,
                                           num_frames=_clip_frames(cfg), stride=d.frame_stride, min_size=d.min_size,
                                           policy=policy)), path


def _imagefolder(cfg: Config):
    d = cfg.data
    return (lambda policy: imagefolder_source(d.path, num_frames=_clip_frames(cfg), stride=d.frame_stride,
                                              min_size=d.min_size, policy=policy)), d.path


def _disk(cfg: Config):
    d = cfg.data
    return (lambda policy: disk_dataset_source(d.path, image_column=d.image_column, caption_column=d.caption_column,
                                               loser_column=d.loser_column or None, min_size=d.min_size,
                                               policy=policy)), d.path


def _embedded(cfg: Config):
    parquet = paths.pick_a_digit(cfg.pretrain) / "train.parquet"
    if not parquet.is_file():
        raise DataError(f"Pick-a-Digit is not built yet (expected {parquet}): `seppo train` builds it, "
                        "or call seppo.embedded.world.ensure_world(cfg) first")
    return _pickapic(cfg, str(parquet))


# data.source → its opener (seppo.config.DATA_SOURCES names the same four).
SOURCES: dict[str, Opener] = {"pickapic": _pickapic, "imagefolder": _imagefolder, "disk": _disk, "embedded": _embedded}


def open_examples(cfg: Config) -> tuple[GuardedExamples, str]:
    """The run's winner source under its bad-record policy, and the path it reads."""
    read, path = SOURCES[cfg.data.source](cfg)
    guarded = guard_bad_records(read, on_bad_record=cfg.data.on_bad_record, max_bad_fraction=cfg.data.max_bad_fraction)
    return guarded, path
