"""The command line's fault corpus (issue 7, "Bad input"): each fault prints ONE line on stderr
naming the key, file, shard or row, exits 2, and shows no traceback unless `--debug`.

Most cases go through `seppo.cli.main([...])` in this process (capsys); one pair runs the real
`python -m seppo` to check what a user sees. Data faults train on the tiny embedded base
(conftest's TINY settings, cached under $SEPPO_CACHE), so they fail at the data, not the model.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TINY
from PIL import Image

from seppo import cli
from seppo.errors import SeppoError
from seppo.methods import ARMS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(next((p for p in (ROOT / "configs" / "digits-seppo.yaml", ROOT / "src" / "seppo" / "configs" / "digits.yaml")
                   if p.exists()), ROOT / "configs" / "digits-seppo.yaml"))
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")  # transformers' "Loading weights" bars are not messages


def error_line(capsys, *overrides: str) -> str:
    """Run `seppo train CONFIG TINY... overrides`; it must fail with one line, exit 2, no traceback."""
    capsys.readouterr()
    code = cli.main(["train", CONFIG, *TINY, *overrides])
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr:\n{err}"
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("seppo: error: ")
    return lines[0]


def raises_with_debug(*overrides: str) -> SeppoError:
    """With --debug the exception propagates (Python prints the traceback)."""
    with pytest.raises(SeppoError) as info:
        cli.main(["--debug", "train", CONFIG, *TINY, *overrides])
    return info.value


def png(array: np.ndarray) -> bytes:
    """uint8 (H, W) → L, uint8 (H, W, 4) → RGBA, uint16 (H, W) → I;16."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    return png((rng.random((size, size)) * 255).astype(np.uint8))


def write_imagefolder(folder: Path, files: dict[str, bytes], rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_shard(path: Path, rows: list[tuple], drop: tuple[str, ...] = ()) -> Path:
    """rows: (caption, jpg_0, jpg_1, label_0)."""
    columns = {"caption": [r[0] for r in rows], "jpg_0": [r[1] for r in rows],
               "jpg_1": [r[2] for r in rows], "label_0": [r[3] for r in rows]}
    for name in drop:
        columns.pop(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def good_pairs(n: int) -> list[tuple]:
    return [(f"a handwritten digit {i % 10}", digit_png(2 * i), digit_png(2 * i + 1), float(i % 2)) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_base(tiny_config, tmp_path_factory) -> Path:
    """The cached tiny embedded base's diffusers folder (built once per session)."""
    from seppo.embedded.pretrain import ensure_embedded_base

    cfg = tiny_config(tmp_path_factory.mktemp("unused"))
    return ensure_embedded_base(cfg.pretrain, progress=False)["base"]


# --------------------------------------------------------------------------- config faults


@pytest.mark.parametrize("overrides, names", [
    (["nonsense.key=1"], "unknown config key: nonsense"),
    (["train.lr=fast"], "train.lr"),
    (["train.batch_size=2.5"], "train.batch_size"),
    (["train.lr=-1e-4"], "train.lr"),
    (["train.iterations=0"], "train.iterations"),
    (["method=dpo", "data.source=imagefolder", "data.path=somewhere"], "data.source imagefolder"),
    (["method=sft", "flipper=indicator"], "config key flipper"),
    (["method=spin", "reference=uniform"], "config key reference"),
    (["method=ditto", "flipper=sign"], "config key flipper"),
    (["train.sharding=fsdp", "train.mode=lora"], "train.sharding: fsdp does not support train.mode=lora"),
    (["pretrain.pair_generators=[base,sdxl]"], "pretrain.pair_generators: 'sdxl' is not one of base, strong"),
    (["pretrain.pair_generators=[]"], "pretrain.pair_generators: name at least one"),
], ids=["unknown-key", "wrong-type", "float-for-int", "negative-lr", "K=0", "dpo-imagefolder",
        "sft-flipper", "spin-reference", "ditto-flipper", "fsdp-lora", "unknown-generator", "no-generator"])
def test_config_faults(overrides, names, capsys, tmp_path):
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}", *overrides)
    assert names in line
    assert not (tmp_path / "run").exists()  # nothing was written
    assert names in str(raises_with_debug(f"output_dir={tmp_path / 'run'}", *overrides))


def test_real_command_line_one_line_and_debug_traceback(tmp_path):
    """What a user sees from `python -m seppo train`: one line, exit 2; --debug: the traceback."""
    cmd = [sys.executable, "-m", "seppo"]
    args = ["train", CONFIG, *TINY, f"output_dir={tmp_path / 'run'}", "train.lr=-1"]
    env = dict(os.environ, SEPPO_THREADS="1", OMP_NUM_THREADS="1")
    plain = subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == ["seppo: error: config key train.lr: must be > 0, got -1.0"]
    debug = subprocess.run([*cmd, "--debug", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ConfigError: config key train.lr" in debug.stderr


# --------------------------------------------------------------------------- output directory and model faults


def test_output_dir_holding_another_run_is_refused(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: sft\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    line = error_line(capsys, f"output_dir={run}")
    assert str(run) in line and "already holds a run" in line and "resume=true" in line and "overwrite=true" in line
    assert (run / "config.yaml").read_text() == "method: sft\n"  # nothing written over
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_unwritable_output_dir(capsys, tmp_path):
    if os.geteuid() == 0:  # root writes through 0o500: use a path under a regular file instead
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        out = blocker / "sub"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "sub"
    line = error_line(capsys, f"output_dir={out}")
    assert str(out) in line and "not writable" in line


def test_model_folder_without_unet(capsys, tmp_path, tiny_base):
    broken = tmp_path / "no-unet"
    shutil.copytree(tiny_base, broken, ignore=shutil.ignore_patterns("unet"))
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}", f"model.path={broken}")
    assert "unet" in line.lower() and str(broken) in line


def test_missing_model_folder(capsys, tmp_path):
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}", f"model.path={tmp_path / 'nowhere'}")
    assert str(tmp_path / "nowhere") in line


# --------------------------------------------------------------------------- data faults


def _pickapic(tmp_path, rows, drop=()) -> tuple[Path, list[str]]:
    shard = write_shard(tmp_path / "shards" / "train-00000.parquet", rows, drop)
    return shard, [f"output_dir={tmp_path / 'run'}", "data.source=pickapic", f"data.path={shard.parent}"]


def test_pickapic_missing_column(capsys, tmp_path, tiny_base):
    shard, args = _pickapic(tmp_path, good_pairs(8), drop=("label_0",))
    line = error_line(capsys, *args)
    assert "train-00000.parquet" in line and "missing column 'label_0'" in line


def test_pickapic_label_outside_0_half_1(capsys, tmp_path, tiny_base):
    rows = good_pairs(8)
    rows[5] = (rows[5][0], rows[5][1], rows[5][2], 0.7)
    _, args = _pickapic(tmp_path, rows)
    line = error_line(capsys, *args)
    assert "train-00000.parquet row 5" in line and "label_0 is 0.7" in line


def test_pickapic_corrupt_image_bytes(capsys, tmp_path, tiny_base):
    rows = good_pairs(8)
    truncated = digit_png(99)[:40]
    rows[3] = (rows[3][0], truncated, rows[3][2], 1.0)  # label 1: jpg_0 is the winner
    _, args = _pickapic(tmp_path, rows)
    line = error_line(capsys, *args)
    assert "train-00000.parquet row 3 jpg_0" in line


def test_imagefolder_row_naming_a_missing_file(capsys, tmp_path, tiny_base):
    files = {f"{i}.png": digit_png(i) for i in range(6)}
    rows = [{"file_name": f"{i}.png", "text": f"a handwritten digit {i}"} for i in range(6)]
    rows.insert(2, {"file_name": "gone.png", "text": "a handwritten digit 7"})
    folder = write_imagefolder(tmp_path / "images", files, rows)
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}", "method=sft", "data.source=imagefolder",
                      f"data.path={folder}")
    assert "metadata.jsonl line 3" in line and "gone.png" in line


def _folder_with_one_missing(tmp_path, good: int) -> Path:
    files = {f"{i}.png": digit_png(i) for i in range(good)}
    rows = [{"file_name": f"{i}.png", "text": f"a handwritten digit {i % 10}"} for i in range(good)]
    rows.insert(4, {"file_name": "gone.png", "text": "a handwritten digit 7"})
    return write_imagefolder(tmp_path / "images", files, rows)


def test_skip_counts_bad_rows_and_trains(capsys, tmp_path, tiny_base):
    folder = _folder_with_one_missing(tmp_path, good=15)  # 1 bad of 16: 6.25%
    run = tmp_path / "run"
    capsys.readouterr()
    code = cli.main(["train", CONFIG, *TINY, f"output_dir={run}", "method=sft", "data.source=imagefolder",
                     f"data.path={folder}", "data.on_bad_record=skip", "data.max_bad_fraction=0.1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads((run / "summary.json").read_text())["data"]
    assert (data["seen"], data["used"], data["bad"]) == (16, 15, 1)
    assert "line 5" in data["bad_examples"][0] and "gone.png" in data["bad_examples"][0]
    assert "bad 1" in out  # the data summary the run prints
    assert (run / "final" / "unet").is_dir()


def test_skip_stops_once_max_bad_fraction_is_exceeded(capsys, tmp_path, tiny_base):
    folder = _folder_with_one_missing(tmp_path, good=15)
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}", "method=sft", "data.source=imagefolder",
                      f"data.path={folder}", "data.on_bad_record=skip", "data.max_bad_fraction=0.05")
    assert "1 of 16 records were bad" in line and "data.max_bad_fraction" in line and "gone.png" in line


# --------------------------------------------------------------------------- valid but unusual images


def unusual_images() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    for i in range(2):
        grey = (rng.random((20, 20)) * 255).astype(np.uint8)
        cmyk = Image.merge("CMYK", [Image.fromarray(c) for c in (grey, 255 - grey, grey // 2, np.zeros_like(grey))])
        buffer = io.BytesIO()
        cmyk.save(buffer, format="JPEG")
        out[f"cmyk{i}.jpg"] = buffer.getvalue()
        palette = Image.fromarray(grey).convert("P")
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG", transparency=int(np.asarray(palette)[0, 0]))
        out[f"palette{i}.png"] = buffer.getvalue()
        rgba = np.stack([grey, grey, grey, (rng.random((20, 20)) * 255).astype(np.uint8)], -1)
        out[f"rgba{i}.png"] = png(rgba)
        out[f"grey16-{i}.png"] = png(grey.astype(np.uint16) * 257)  # mode I;16
    return out


def test_unusual_images_train_end_to_end(capsys, tmp_path, tiny_base):
    files = unusual_images()
    modes = {name: Image.open(io.BytesIO(data)).mode for name, data in files.items()}
    assert set(modes.values()) == {"CMYK", "P", "RGBA", "I;16"}
    assert all("transparency" in Image.open(io.BytesIO(files[n])).info for n in files if n.startswith("palette"))
    rows = [{"file_name": name, "text": f"a handwritten digit {i % 10}"} for i, name in enumerate(sorted(files))]
    folder = write_imagefolder(tmp_path / "images", files, rows)
    run = tmp_path / "run"
    capsys.readouterr()
    code = cli.main(["train", CONFIG, *TINY, f"output_dir={run}", "method=sft", "data.source=imagefolder",
                     f"data.path={folder}", "data.resolution=16"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["data"]["used"], summary["data"]["bad"]) == (len(files), 0)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and not r["skipped"] for r in metrics)
    assert (run / "final" / "unet").is_dir()


# --------------------------------------------------------------------------- after a failed set-up (issue 14)


def test_the_corrected_command_runs_after_a_failed_set_up(capsys, tmp_path):
    """A run that fails before training (bad model path) leaves no run that refuses the fix."""
    run = tmp_path / "run"
    error_line(capsys, f"output_dir={run}", f"model.path={tmp_path / 'nowhere'}")
    assert cli.main(["train", CONFIG, *TINY, f"output_dir={run}"]) == 0
    assert (run / "final").is_dir()


def test_real_command_line_one_line_after_loading_a_latent_model(tmp_path):
    """A fault met after the model loads (here: the data path) is still exactly one line on
    stderr: diffusers' "should be kept in float32" warnings at load are silenced."""
    from tiny_models import make_tiny_sd15

    sd = make_tiny_sd15(tmp_path / "sd")
    args = ["train", CONFIG, *TINY, f"output_dir={tmp_path / 'run'}", f"model.path={sd}", "data.source=pickapic",
            f"data.path={tmp_path / 'no-shards'}"]
    env = dict(os.environ, SEPPO_THREADS="1", OMP_NUM_THREADS="1")
    plain = subprocess.run([sys.executable, "-m", "seppo", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=180)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [f"seppo: error: {tmp_path / 'no-shards'}: no such file or folder"]


def test_default_threads_leave_room_for_other_jobs(monkeypatch):
    """$SEPPO_THREADS unset: half the cores per process, at most 4 (issue 14, item 9)."""
    assert [cli.default_threads(c) for c in (1, 2, 4, 8, 64)] == [1, 1, 2, 4, 4]
    assert cli.default_threads(16, local_processes=8) == 1
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("SEPPO_THREADS", raising=False)
        cli._threads()
        assert torch.get_num_threads() == cli.default_threads(len(os.sched_getaffinity(0)))
        monkeypatch.setenv("SEPPO_THREADS", "3")
        cli._threads()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("var,engine,instead", [("ACCELERATE_USE_FSDP", "FSDP", "set train.sharding=fsdp instead"),
                                               ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed", "use data parallel")])
def test_sharded_engines_are_refused(capsys, tmp_path, monkeypatch, var, engine, instead):
    """accelerate's FSDP and DeepSpeed would save one process's shard as if whole: refused, not run
    silently; FSDP points to seppo's own (train.sharding=fsdp, tests/test_multiprocess.py)."""
    monkeypatch.setenv(var, "true")
    line = error_line(capsys, f"output_dir={tmp_path / 'run'}")
    assert f"{engine} through accelerate is not supported" in line and var in line and instead in line


def test_benchmark_names_a_bad_arm_or_guidance_list_in_one_line(capsys, tmp_path):
    for flags, expected in ((["--arms", "base,sft,dpoo"], "--arms: unknown arm 'dpoo'"),
                            (["--guidances", "2,x"], "--guidances: expected comma-separated numbers or 'none', got '2,x'")):
        capsys.readouterr()
        assert cli.main(["benchmark", CONFIG, *flags, "--out", str(tmp_path / "b")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"seppo: error: {expected}; choose from {', '.join(ARMS)}" if "arm" in expected
                       else f"seppo: error: {expected}"]
    assert not (tmp_path / "b").exists()  # nothing started
