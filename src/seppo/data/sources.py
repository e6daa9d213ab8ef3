"""Winner sources: Pick-a-Pic parquet shards, an imagefolder, a saved `datasets` dataset.

Every source reads its rows as `Record`s: a `where` plus a `load()` that decodes the row.
Decoding happens one record at a time inside `_examples`, so a corrupt image or a bad label
in one row raises a `DataError` that a `SkipPolicy` can count and skip, without losing the
rest of the stream. Problems that spoil a whole shard (a missing column, a missing file)
always raise.

    policy = SkipPolicy(on_bad_record="skip")
    for example in pickapic_source("data/train-*.parquet", policy=policy): ...
    print(policy.summary)

or, with the factory form the run uses, `guard_bad_records(lambda p: open_source(..., policy=p))`.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from PIL import Image

from seppo.data.examples import Example
from seppo.data.images import decode_image, decode_video, is_video_path, to_rgb
from seppo.errors import ConfigError, DataError

PICKAPIC_BATCH_ROWS = 64  # rows per parquet read: a few MB of JPEGs, never the whole shard
_MIN_BAD_TO_ABORT = 10  # mid-stream aborts need this many bad records, so one early bad row
#                         in a big, mostly clean set does not look like a high bad fraction


class _Tie:
    """What `Record.load` returns for a Pick-a-Pic tie: dropped and counted, not an error."""


TIE = _Tie()


@dataclass
class Record:
    """One row, not yet decoded: `load()` returns an `Example`, `TIE`, or raises DataError."""

    where: str
    load: Callable[[], "Example | _Tie"]


# ---------------------------------------------------------------------------------------------
# Counting and skipping bad records
# ---------------------------------------------------------------------------------------------


@dataclass
class DataSummary:
    """What a pass over a source saw; the run prints it and the cache stores it."""

    seen: int = 0
    used: int = 0
    ties_dropped: int = 0
    empty_captions: int = 0  # valid: they train the unconditional prompt
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)  # the first few "where: message"

    def as_dict(self) -> dict:
        return {"seen": self.seen, "used": self.used, "ties_dropped": self.ties_dropped,
                "empty_captions": self.empty_captions, "bad": self.bad,
                "bad_examples": list(self.bad_examples)}

    def __str__(self) -> str:
        text = (f"seen {self.seen}, used {self.used}, ties dropped {self.ties_dropped}, "
                f"empty captions {self.empty_captions}, bad {self.bad}")
        return text + (f" (first: {'; '.join(self.bad_examples)})" if self.bad_examples else "")


class SkipPolicy:
    """Whether a bad record stops the run ("error") or is counted and skipped ("skip").

    With "skip", the run still stops once more than `max_bad_fraction` of the records seen
    are bad: checked along the way once `min_seen` records (and a handful of bad ones) are
    in, and always at the end.
    """

    KEEP_EXAMPLES = 5

    def __init__(self, on_bad_record: str = "error", *, max_bad_fraction: float = 0.01, min_seen: int = 20):
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_record is {on_bad_record!r}, expected 'error' or 'skip'")
        self.on_bad_record, self.max_bad_fraction, self.min_seen = on_bad_record, max_bad_fraction, min_seen
        self.summary = DataSummary()

    def used(self, example: Example) -> None:
        self.summary.seen += 1
        self.summary.used += 1
        self.summary.empty_captions += not example.prompt

    def tie(self) -> None:
        self.summary.seen += 1
        self.summary.ties_dropped += 1

    def bad(self, error: DataError) -> None:
        """Count a bad record; re-raise it unless skipping, and stop if too many are bad."""
        if self.on_bad_record == "error":
            raise error
        self.summary.seen += 1
        self.summary.bad += 1
        if len(self.summary.bad_examples) < self.KEEP_EXAMPLES:
            self.summary.bad_examples.append(str(error))
        if self.summary.seen >= self.min_seen and self.summary.bad >= _MIN_BAD_TO_ABORT:
            self.check()

    def check(self) -> None:
        """Raise if the bad fraction so far is over the limit."""
        s = self.summary
        if s.seen and s.bad / s.seen > self.max_bad_fraction:
            raise DataError(
                f"{s.bad} of {s.seen} records were bad ({s.bad / s.seen:.1%}, over "
                f"data.max_bad_fraction {self.max_bad_fraction:.1%}); first: {'; '.join(s.bad_examples)}"
            )


class GuardedExamples:
    """Iterable of examples from `factory(policy)`, with the pass's `summary`."""

    def __init__(self, factory: Callable[[SkipPolicy], Iterable[Example]], **policy_kwargs):
        self.factory, self.policy_kwargs = factory, policy_kwargs
        self.policy = SkipPolicy(**policy_kwargs)

    @property
    def summary(self) -> DataSummary:
        return self.policy.summary

    def __iter__(self) -> Iterator[Example]:
        self.policy = SkipPolicy(**self.policy_kwargs)  # each pass counts afresh
        yield from self.factory(self.policy)
        self.policy.check()


def guard_bad_records(
    examples_iter_factory: Callable[[SkipPolicy], Iterable[Example]],
    *,
    on_bad_record: str = "error",
    max_bad_fraction: float = 0.01,
    min_seen: int = 20,
) -> GuardedExamples:
    """Wrap a source so bad records are skipped (or not) under one policy; see `SkipPolicy`.

    The factory receives the policy and passes it to the source:
    `guard_bad_records(lambda policy: open_source("pickapic", path, policy=policy), ...)`.
    """
    return GuardedExamples(examples_iter_factory, on_bad_record=on_bad_record,
                           max_bad_fraction=max_bad_fraction, min_seen=min_seen)


def _examples(records: Iterator[Record], policy: SkipPolicy | None) -> Iterator[Example]:
    """Decode records one by one under the policy: the heart of per-record error handling."""
    policy = policy or SkipPolicy("error")
    for record in records:
        try:
            example = record.load()
        except DataError as error:
            policy.bad(error)
            continue
        if example is TIE:
            policy.tie()
            continue
        policy.used(example)
        yield example
    policy.check()


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
    import pyarrow.parquet as pq  # imported here: only parquet sources need it

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

    return _examples(records(), policy)


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

    return _examples(records(), policy)


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
            raise DataError(f"{where_file}: is a video; set data.num_frames to train on videos")
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
    import datasets  # imported here: it is slow to import

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

    return _examples(records(), policy)


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


SOURCES = {"pickapic": pickapic_source, "imagefolder": imagefolder_source, "disk": disk_dataset_source}


def open_source(kind: str, path: str, **kwargs) -> Iterator[Example]:
    """The source of `kind` ("pickapic", "imagefolder" or "disk") reading `path`."""
    if kind not in SOURCES:
        raise ConfigError(f"data.source is {kind!r}, expected one of {', '.join(SOURCES)}")
    return SOURCES[kind](path, **kwargs)
