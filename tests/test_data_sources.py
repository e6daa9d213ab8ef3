"""Winner sources: the right winner per label, streaming shards, and faults that name the row."""

import io
import json

import datasets
import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from seppo.config import DATA_SOURCES, load_config
from seppo.data.records import DataSummary, SkipPolicy, guard_bad_records
from seppo.data.sources import SOURCES, disk_dataset_source, imagefolder_source, pickapic_source
from seppo.errors import ConfigError, DataError


def png(color, size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


def write_shard(path, rows, drop=()):
    """rows: (caption, jpg_0, jpg_1, label_0) tuples."""
    columns = {"caption": [r[0] for r in rows], "jpg_0": [r[1] for r in rows],
               "jpg_1": [r[2] for r in rows], "label_0": [r[3] for r in rows]}
    for name in drop:
        columns.pop(name)
    pq.write_table(pa.table(columns), path, row_group_size=3)


def colour(image):
    return image.getpixel((0, 0))


# --- Pick-a-Pic ---------------------------------------------------------------------------------


def test_pickapic_winner_by_label_ties_dropped_in_shard_order(tmp_path):
    write_shard(tmp_path / "train-0001.parquet", [("b0", RED, BLUE, 0.0), ("b1", RED, BLUE, 0.5)])
    write_shard(tmp_path / "train-0000.parquet", [("a0", RED, BLUE, 1.0), (None, BLUE, RED, 1.0)])
    policy = SkipPolicy()
    examples = list(pickapic_source(str(tmp_path), pairs=True, policy=policy))
    assert [e.prompt for e in examples] == ["a0", "", "b0"]
    assert [colour(e.winner) for e in examples] == [(255, 0, 0), (0, 0, 255), (0, 0, 255)]
    assert [colour(e.loser) for e in examples] == [(0, 0, 255), (255, 0, 0), (255, 0, 0)]
    assert examples[2].where == "train-0001.parquet row 0"
    assert (policy.summary.seen, policy.summary.used, policy.summary.ties_dropped,
            policy.summary.empty_captions) == (4, 3, 1, 1)
    # A glob and a single file read the same rows; without pairs there is no loser.
    assert [e.prompt for e in pickapic_source(str(tmp_path / "train-*.parquet"))] == ["a0", "", "b0"]
    assert next(pickapic_source(str(tmp_path / "train-0000.parquet"))).loser is None


def test_pickapic_streams_many_batches(tmp_path):
    rows = [(f"p{i}", RED, BLUE, float(i % 2)) for i in range(150)]  # > 2 parquet batches
    write_shard(tmp_path / "s.parquet", rows)
    examples = list(pickapic_source(str(tmp_path / "s.parquet")))
    assert len(examples) == 150 and examples[149].where == "s.parquet row 149"


def test_pickapic_caption_bytes_are_utf8(tmp_path):
    write_shard(tmp_path / "s.parquet", [("é".encode(), RED, BLUE, 1.0)])
    assert next(pickapic_source(str(tmp_path / "s.parquet"))).prompt == "é"


# --- the corpus of real faults: each must name the file, row or key -----------------------------

NOISE = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(NOISE, format="PNG")
TRUNCATED = NOISE.getvalue()[:2000]  # header intact, pixel data cut off


def fault_missing_label(tmp_path):
    write_shard(tmp_path / "train-0003.parquet", [("a", RED, BLUE, 1.0)], drop=["label_0"])
    return lambda: list(pickapic_source(str(tmp_path)))


def fault_label_07(tmp_path):
    write_shard(tmp_path / "train-0001.parquet", [("a", RED, BLUE, 1.0)] * 17 + [("b", RED, BLUE, 0.7)])
    return lambda: list(pickapic_source(str(tmp_path)))


def fault_non_utf8_caption(tmp_path):
    write_shard(tmp_path / "s.parquet", [("ok".encode(), RED, BLUE, 1.0), (b"\xff\xfe bad", RED, BLUE, 1.0)])
    return lambda: list(pickapic_source(str(tmp_path)))


def fault_truncated_winner(tmp_path):
    write_shard(tmp_path / "s.parquet", [("a", TRUNCATED, BLUE, 1.0)])
    return lambda: list(pickapic_source(str(tmp_path)))


def fault_missing_file(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    rows = [{"file_name": "a.png", "text": "a"}, {"file_name": "gone.png", "text": "b"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return lambda: list(imagefolder_source(str(tmp_path)))


def fault_bad_json(tmp_path):
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": ')
    return lambda: list(imagefolder_source(str(tmp_path)))


def fault_zero_frame_video(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "clip", "text": "a"}))
    return lambda: list(imagefolder_source(str(tmp_path), num_frames=4))


def fault_video_for_an_image_model(tmp_path):
    """Clips given to an image model: the missing setting is model.motion_adapter (issue 14, item 8)."""
    (tmp_path / "clip").mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16)).save(tmp_path / "clip" / f"{i}.png")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "clip", "text": "a"}))
    return lambda: list(imagefolder_source(str(tmp_path)))  # no num_frames: the model has no motion adapter


def fault_disk_missing_column(tmp_path):
    datasets.Dataset.from_dict({"image": [RED], "caption": ["a"]}).save_to_disk(str(tmp_path / "ds"))
    return lambda: list(disk_dataset_source(str(tmp_path / "ds")))


FAULTS = {
    fault_missing_label: r"^train-0003\.parquet: missing column 'label_0'",
    fault_label_07: r"^train-0001\.parquet row 17: label_0 is 0\.7, expected 0, 0\.5 or 1$",
    fault_non_utf8_caption: r"^s\.parquet row 1: caption is not valid UTF-8",
    fault_truncated_winner: r"^s\.parquet row 0 jpg_0: image data is corrupt or truncated",
    fault_missing_file: r"metadata\.jsonl line 2: file gone\.png not found$",
    fault_bad_json: r"metadata\.jsonl line 1: bad JSON",
    fault_zero_frame_video: r"metadata\.jsonl line 1 \(clip\): video has 0 frames, needs 4",
    fault_video_for_an_image_model: r"metadata\.jsonl line 1 \(clip\): is a video and the model an image model; "
                                    r"set model\.motion_adapter to train a video model",
    fault_disk_missing_column: r"ds: missing column 'text'",
}


@pytest.mark.parametrize("make,message", FAULTS.items(), ids=[f.__name__ for f in FAULTS])
def test_fault_corpus(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as caught:
        make(tmp_path)()
    assert "\n" not in str(caught.value)


# --- skipping bad records -------------------------------------------------------------------------


def test_skip_policy_skips_then_stops_over_the_limit(tmp_path):
    rows = [(f"p{i}", RED, BLUE, 1.0) for i in range(50)]
    rows[10] = ("bad", TRUNCATED, BLUE, 1.0)
    write_shard(tmp_path / "s.parquet", rows)
    guarded = guard_bad_records(lambda policy: pickapic_source(str(tmp_path), policy=policy),
                                on_bad_record="skip", max_bad_fraction=0.05)
    assert len(list(guarded)) == 49
    assert (guarded.summary.bad, guarded.summary.seen) == (1, 50)
    assert guarded.summary.bad_examples[0].startswith("s.parquet row 10 jpg_0")
    # 1 in 50 is over a 1% limit: the end-of-pass check stops the run and names the row.
    strict = guard_bad_records(lambda policy: pickapic_source(str(tmp_path), policy=policy),
                               on_bad_record="skip", max_bad_fraction=0.01)
    with pytest.raises(DataError, match=r"1 of 50 records were bad .*first: s\.parquet row 10"):
        list(strict)


def test_skip_policy_stops_early_on_mostly_bad_data(tmp_path):
    write_shard(tmp_path / "s.parquet", [("p", TRUNCATED, BLUE, 1.0)] * 500)
    guarded = guard_bad_records(lambda policy: pickapic_source(str(tmp_path), policy=policy),
                                on_bad_record="skip", min_seen=20)
    with pytest.raises(DataError, match=r"^20 of 20 records were bad"):
        list(guarded)


def test_whole_shard_faults_stop_the_run_even_when_skipping(tmp_path):
    """A shard with the wrong columns is not a bad record: `skip` does not skip it (README)."""
    write_shard(tmp_path / "train-0003.parquet", [("a", RED, BLUE, 1.0)], drop=["label_0"])
    guarded = guard_bad_records(lambda policy: pickapic_source(str(tmp_path), policy=policy), on_bad_record="skip")
    with pytest.raises(DataError, match=r"^train-0003\.parquet: missing column 'label_0'"):
        list(guarded)


def test_error_policy_raises_first_bad_record(tmp_path):
    write_shard(tmp_path / "s.parquet", [("a", RED, BLUE, 1.0), ("b", TRUNCATED, BLUE, 1.0), ("c", RED, BLUE, 2.0)])
    source = pickapic_source(str(tmp_path), policy=SkipPolicy("error"))
    assert next(source).prompt == "a"
    with pytest.raises(DataError, match=r"^s\.parquet row 1 jpg_0"):
        next(source)
    with pytest.raises(ConfigError):
        SkipPolicy("ignore")
    assert "bad 2" in str(DataSummary(seen=5, used=3, bad=2))


# --- imagefolder and saved datasets ---------------------------------------------------------------


def test_imagefolder_images_and_videos(tmp_path):
    Image.new("RGB", (16, 16), (0, 255, 0)).save(tmp_path / "a.png")
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    frames[..., 1] = (np.arange(4) * 50)[:, None, None]  # distinct frames: GIF merges equal ones
    iio.imwrite(tmp_path / "v.gif", frames, plugin="pillow")
    rows = [{"file_name": "a.png", "text": "green"}, {"file_name": "v.gif", "text": None}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    images = list(imagefolder_source(str(tmp_path)))
    assert [e.prompt for e in images] == ["green", ""]
    assert colour(images[0].winner) == (0, 255, 0) and isinstance(images[1].winner, Image.Image)
    # Through the run's config: a video model (motion adapter) reads clips of data.num_frames.
    read, _ = SOURCES["imagefolder"](load_config(None, ["data.source=imagefolder", f"data.path={tmp_path}",
                                                        "model.motion_adapter=adapter", "data.num_frames=2",
                                                        "data.frame_stride=2"]))
    videos = list(read(SkipPolicy()))
    assert isinstance(videos[1].winner, list) and len(videos[1].winner) == 2
    assert videos[1].where == f"{tmp_path.name}/metadata.jsonl line 2"


def test_disk_dataset_with_pil_bytes_and_losers(tmp_path):
    ds = datasets.Dataset.from_dict({
        "image": [Image.new("RGB", (16, 16), (255, 0, 0))] * 2,
        "other": [{"bytes": BLUE, "path": None}, {"bytes": BLUE, "path": None}],
        "text": ["a", None],
    }).cast_column("image", datasets.Image()).cast_column("other", datasets.Image())
    dd = datasets.DatasetDict({"train": ds})
    dd.save_to_disk(str(tmp_path / "dd"))
    examples = list(disk_dataset_source(str(tmp_path / "dd"), loser_column="other"))
    assert [e.prompt for e in examples] == ["a", ""]
    assert colour(examples[0].winner) == (255, 0, 0) and colour(examples[0].loser) == (0, 0, 255)
    datasets.Dataset.from_dict({"image": [RED], "text": ["raw"]}).save_to_disk(str(tmp_path / "raw"))
    read, path = SOURCES["disk"](load_config(None, ["data.source=disk", f"data.path={tmp_path / 'raw'}",
                                                    "data.caption_column=text"]))
    assert colour(next(read(SkipPolicy())).winner) == (255, 0, 0) and path == str(tmp_path / "raw")


def test_every_configurable_source_opens_and_others_are_refused():
    assert set(SOURCES) == set(DATA_SOURCES)
    with pytest.raises(ConfigError, match="'webdataset'"):
        load_config(None, ["data.source=webdataset", "data.path=x"])
