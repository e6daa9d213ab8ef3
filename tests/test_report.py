"""`seppo report`: one self-contained page, read back as a browser would: results first, every
picture decodes, no empty plot, and the config shows only what the method used."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from seppo.config import PretrainConfig
from seppo.embedded.pretrain import build_tiny_model
from seppo.errors import ModelError
from seppo.evaluate import EvalResult, evaluate
from seppo.models import load_for_sampling, load_snapshot
from seppo.report import plot_curves, write_report
from seppo.report.figures import logged_panels, read_metrics
from seppo.report.grid import Comparison, grid_html
from seppo.report.html import fit

PROMPTS = ["a handwritten digit 1", "a handwritten digit 2"]


class Page(HTMLParser):
    """The page's images (src, alt) and the order of its sections and tags."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.links, self.tags, self.sections, self.texts = [], [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "img":
            self.images.append((attrs.get("src") or "", attrs.get("alt") or ""))
        if tag == "section":
            self.sections.append(attrs.get("id"))
        for key in ("href", "src"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.links.append(attrs[key])

    def handle_data(self, data):
        self.texts.append(data)


def decode(src: str) -> Image.Image:
    head, _, data = src.partition(",")
    assert head in ("data:image/png;base64", "data:image/gif;base64"), head
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()  # decodes every byte, not just the header
    return image


def fake_run(root, unet, method: str, rows: list[dict]):
    run = root / method
    shutil.copytree(root / "model", run / "final")
    (run / "pool").mkdir()
    state = {k: v.contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(run / "pool" / "theta-0.safetensors"))
    save_file({k: v * 0.9 for k, v in state.items()}, str(run / "pool" / "theta-1.safetensors"))
    config = {"method": method, "beta": 5000.0, "seed": 0, "model": {"path": "embedded:digits"},
              "sampler": {"steps": 2, "guidance": 2.0, "eta": 0.0}, "data": {"source": "embedded", "resolution": 16},
              "train": {"iterations": 2, "updates_per_iteration": 2}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "summary.json").write_text(json.dumps({"updates": 4, "wall_seconds": 1.0, "reference_draws": [0, 1]}))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two fake runs (SePPO, SFT): hand-written config and metrics, an untrained tiny model as
    `final/`, θ_0 and θ_1; the SFT run logs only its loss, as seppo.losses.sft does."""
    root = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()  # $SEPPO_CACHE is private already (conftest.py)
    torch.set_num_threads(1)  # a 16-pixel UNet runs ~10x faster on one thread than two on a busy 2-core box
    unet, *_ = build_tiny_model(PretrainConfig(), root / "model")
    seppo_rows = [{"step": s + 1, "iteration": s // 2 + 1, "reference": s // 2, "lr": 1e-4, "loss": 0.69 - 0.01 * s,
                   "flip_rate": 0.4, "implicit_acc": 0.5 + 0.05 * s, "logit": 0.1 * s, "policy_err_w": 0.3,
                   "ref_err_w": 0.31, "policy_err_ref": 0.4, "ref_err_ref": 0.41} for s in range(4)]
    sft_rows = [{"step": s + 1, "iteration": s // 2 + 1, "reference": 0, "lr": 1e-4, "loss": 0.3 - 0.01 * s,
                 "policy_err_w": 0.3 - 0.01 * s} for s in range(4)]
    yield fake_run(root, unet, "seppo", seppo_rows), fake_run(root, unet, "sft", sft_rows)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def evaluated(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    result = evaluate([str(r) for r in runs], names=["seppo", "sft"], prompts=PROMPTS, judges=["digit"], seeds=[0],
                      steps=2, guidance=2.0, progress=False, n_boot=50, samples=2, out=out)
    return result, out


@pytest.fixture(scope="module")
def page(runs, evaluated, tmp_path_factory):
    path = write_report(list(runs), tmp_path_factory.mktemp("page") / "r.html", eval_result=evaluated[0])
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def test_every_image_decodes_and_nothing_is_fetched(page):
    text, parsed = page
    assert len(parsed.images) >= 8  # 2 × 2 comparison, curves, 2 pools of θ_0, θ_1
    for src, alt in parsed.images:
        image = decode(src)
        assert image.width > 0 and image.height > 0, alt
    assert all(link.startswith("data:") for link in parsed.links)
    assert "http://" not in text and "https://" not in text


def test_sections_in_reading_order_results_before_the_first_curve(page):
    text, parsed = page
    assert parsed.sections == ["results", "side-by-side", "curves", "pool", "config"]
    first_table = text.index('<table class="data">')
    first_curve = next(i for i, (src, alt) in enumerate(parsed.images) if alt.startswith("training curves"))
    assert first_table < text.index(parsed.images[first_curve][0])
    assert text.index("95% bootstrap interval") < text.index('id="curves"')
    assert "The interval counts images" in text or "The interval counts (prompt, seed)" in text


def test_grid_cells_are_labelled_separated_and_upscaled_by_nearest_neighbour(page):
    text, parsed = page
    cells = [(src, alt) for src, alt in parsed.images if " — " in alt and alt.split(" — ")[0] in PROMPTS]
    assert {alt for _, alt in cells} >= {f"{p} — {m}" for p in PROMPTS for m in ("seppo", "sft")}
    image = decode(cells[0][0])
    assert image.size == (128, 128)  # 16 px × 8, a whole factor
    pixels = image.convert("L").load()
    assert all(pixels[8 * (x // 8), 8 * (y // 8)] == pixels[x, y] for x in range(0, 128, 3) for y in range(0, 128, 5))
    assert "border-spacing" in text  # cells apart
    assert '<th class="row">a handwritten digit 1</th>' in text


def test_no_empty_plot_and_curves_only_of_what_each_method_logs(runs, page):
    text, _ = page
    assert "no flip_rate logged" not in text and "nothing logged" not in text
    seppo, sft = (logged_panels(read_metrics(r)) for r in runs)
    assert "flip rate" in seppo and "reference drawn (j)" in seppo
    assert sft == ["errors on winners e(x^w)"]  # no loss −log σ(z), no flip rate, constant lr and reference
    figure = plot_curves(list(runs), runs[0].parent / "curves.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_collapsed_showing_what_the_method_used(page):
    text, parsed = page
    config = text[text.index('<section id="config">'):]
    assert "<details open" not in config and "<details><summary>sft" in config
    sft = config[config.index("<summary>sft"):]
    sft_table = sft[:sft.index("Left out")]
    for unused in ("flipper", "reference</code>", "beta</code>", "sampler.steps"):
        assert unused not in sft_table, unused
    assert "sft uses no reference model" in sft
    seppo = config[config.index("<summary>seppo"):config.index("<summary>sft")]
    assert "<code>flipper</code>" in seppo and "<code>beta</code>" in seppo
    pool = text[text.index('<section id="pool">'):text.index('<section id="config">')]
    assert "θ_1" in pool and "<details open" not in pool


def test_a_preset_says_which_fields_it_fixed(runs, tmp_path):
    run = tmp_path / "spin"
    shutil.copytree(runs[0], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "method": "spin"}))
    text = write_report([run], tmp_path / "spin.html", prompts=[]).read_text()
    config = text[text.index('<section id="config">'):]
    assert "set by the preset spin" in config
    assert "No judge scored these runs" in text


def test_report_reads_back_an_evaluation_folder(runs, evaluated, tmp_path):
    result = EvalResult.read(evaluated[1])
    assert result.models == ["seppo", "sft"] and result.judges == ["digit"]
    text = write_report(list(runs), tmp_path / "again.html", eval_result=result).read_text()
    assert text.index('id="results"') < text.index('id="side-by-side"') < text.index('id="curves"')
    for src, _ in Page(text).images:
        decode(src)


def test_fit_upscales_small_and_shrinks_large_pictures():
    assert fit(Image.new("L", (16, 16)), 128).size == (128, 128)
    assert fit(Image.new("L", (20, 10)), 128).size == (140, 70)  # ceil(128 / 20) = 7
    assert fit(Image.new("RGB", (1024, 512)), 128).size == (256, 128)


def test_snapshot_with_foreign_keys_is_an_error(runs, tmp_path):
    bad = tmp_path / "theta-9.safetensors"
    save_file({"not.a.parameter": torch.zeros(1)}, str(bad))
    with pytest.raises(ModelError, match="not.a.parameter"):
        load_snapshot(load_for_sampling(str(runs[0])), bad)


def test_a_clip_cell_is_an_animated_gif_in_the_same_layout():
    clip = [Image.new("L", (16, 16), v) for v in (0, 128, 255)]
    grid = Comparison(rows=["a moving digit 3"], columns=["base", "seppo"], cells=[[clip, clip]])
    parsed = Page(grid_html(grid))
    assert [alt for _, alt in parsed.images] == ["a moving digit 3 — base", "a moving digit 3 — seppo"]
    gif = decode(parsed.images[0][0])
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == (128, 128)
