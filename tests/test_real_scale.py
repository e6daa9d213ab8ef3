"""Real-model paths on tiny local SD-1.5 and SDXL folders: `seppo train` end to end on
Pick-a-Pic parquet and imagefolder data, full and LoRA, then plain diffusers loads the result."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tiny_models import make_tiny_sd15, make_tiny_sdxl

from seppo.config import load_config
from seppo.train import train

ROOT = Path(__file__).parents[1]
PROMPTS = ["a photo of a red cat", "a photo of a blue dog", "a red car", "a blue cat"]
FAST = ["train.iterations=2", "train.updates_per_iteration=2", "train.batch_size=2", "sampler.steps=2",
        "sampler.guidance=3.0", "data.resolution=16", "log.progress=false", "log.report_to=none",
        "checkpoints.every=0", "beta=500", "train.lr=1e-3"]


def _png(seed: int, size=(20, 24)) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pickapic(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pickapic")
    n = 8
    table = pa.table({"caption": [PROMPTS[i % 4] for i in range(n)], "jpg_0": [_png(i) for i in range(n)],
                      "jpg_1": [_png(100 + i) for i in range(n)], "label_0": [1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.0]})
    pq.write_table(table.slice(0, 4), folder / "train-0000.parquet")
    pq.write_table(table.slice(4, 4), folder / "train-0001.parquet")
    return folder


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imagefolder")
    rows = []
    for i in range(6):
        (folder / f"{i}.png").write_bytes(_png(200 + i, size=(24, 20)))
        rows.append(json.dumps({"file_name": f"{i}.png", "text": PROMPTS[i % 4]}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> Path:
    return make_tiny_sd15(tmp_path_factory.mktemp("sd15") / "model")


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory) -> Path:
    return make_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "model")


def _plain_diffusers(code: str) -> str:
    """Run a snippet that imports only diffusers/torch, never seppo."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_paper_configs_validate():
    sd15 = load_config(ROOT / "configs/sd15-pickapic-seppo.yaml")
    assert (sd15.train.iterations, sd15.train.updates_per_iteration) == (7, 30)
    assert 8 * sd15.train.batch_size * sd15.train.grad_accum == 2048
    assert sd15.train.lr == pytest.approx(1e-8 * 2048)
    assert (sd15.sampler.steps, sd15.sampler.guidance, sd15.beta) == (20, 7.5, 5000)
    assert load_config(ROOT / "configs/sdxl-pickapic-seppo.yaml").train.mode == "lora"


def test_sd15_full_on_pickapic_then_plain_diffusers(sd, pickapic, tmp_path):
    cfg = load_config(ROOT / "configs/digits-seppo.yaml", [*FAST, f"model.path={sd}", "data.source=pickapic",
                                                           f"data.path={pickapic}", f"output_dir={tmp_path / 'run'}"])
    run = train(cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["used"] == 7 and summary["data"]["ties_dropped"] == 1  # across both shards
    out = _plain_diffusers(f"""
import torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained({str(run / 'final')!r}, safety_checker=None)
image = pipe("a photo of a red cat", num_inference_steps=2, height=16, width=16, output_type="np",
             generator=torch.Generator().manual_seed(0)).images[0]
print(type(pipe).__name__, image.shape)
""")
    assert "StableDiffusionPipeline (16, 16, 3)" in out


def test_sd15_dpo_uses_both_images(sd, pickapic, tmp_path):
    cfg = load_config(ROOT / "configs/digits-seppo.yaml", [*FAST, "method=dpo", f"model.path={sd}", "data.source=pickapic",
                                                           f"data.path={pickapic}", f"output_dir={tmp_path / 'run'}"])
    run = train(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("policy_err_l" in r for r in rows) and {r["reference"] for r in rows} == {0}


def test_sd15_lora_export_loads_with_load_lora_weights(sd, imagefolder, tmp_path):
    cfg = load_config(ROOT / "configs/digits-seppo.yaml", [*FAST, f"model.path={sd}", "data.source=imagefolder",
                                                           f"data.path={imagefolder}", "train.mode=lora",
                                                           "train.lora_rank=4", "data.hflip=true", "pool.storage=disk",
                                                           f"output_dir={tmp_path / 'run'}"])
    run = train(cfg)
    assert (run / "final" / "pytorch_lora_weights.safetensors").exists()
    pool = sorted(p.name for p in (run / "pool").iterdir())
    assert pool == ["theta-0.safetensors", "theta-1.safetensors", "theta-2.safetensors"]
    out = _plain_diffusers(f"""
import torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained({str(sd)!r}, safety_checker=None)
kw = dict(num_inference_steps=2, height=16, width=16, output_type="np")
base = pipe("a red car", generator=torch.Generator().manual_seed(0), **kw).images[0]
pipe.load_lora_weights({str(run / 'final')!r})
tuned = pipe("a red car", generator=torch.Generator().manual_seed(0), **kw).images[0]
print("changed", float(abs(tuned - base).max()) > 0)
""")
    assert "changed True" in out


def test_sdxl_full_on_imagefolder_then_plain_diffusers(sdxl, imagefolder, tmp_path):
    cfg = load_config(ROOT / "configs/digits-seppo.yaml", [*FAST, f"model.path={sdxl}", "data.source=imagefolder",
                                                           f"data.path={imagefolder}", "data.crop=random",
                                                           f"output_dir={tmp_path / 'run'}"])
    run = train(cfg)
    out = _plain_diffusers(f"""
import torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained({str(run / 'final')!r})
image = pipe("a photo of a red cat", num_inference_steps=2, height=16, width=16, output_type="np",
             generator=torch.Generator().manual_seed(0)).images[0]
print(type(pipe).__name__, image.shape)
""")
    assert "StableDiffusionXLPipeline (16, 16, 3)" in out


def test_v_prediction_model_trains(tmp_path, imagefolder):
    folder = make_tiny_sd15(tmp_path / "v", prediction_type="v_prediction")
    cfg = load_config(ROOT / "configs/digits-seppo.yaml", [*FAST, f"model.path={folder}", "data.source=imagefolder",
                                                           f"data.path={imagefolder}", f"output_dir={tmp_path / 'run'}"])
    run = train(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(np.isfinite(r["loss"]) for r in rows)
