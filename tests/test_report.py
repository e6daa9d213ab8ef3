"""`seppo.report`: a self-contained HTML page that parses and references only embedded images."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest
import torch
import yaml
from safetensors.torch import save_file


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A fake run: hand-written config and metrics, an untrained tiny model as `final/`, θ_0 and θ_1."""
    root = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()  # $SEPPO_CACHE is private already (conftest.py)
    torch.set_num_threads(1)  # a 16-pixel UNet runs ~10x faster on one thread than two on a busy 2-core box
    from seppo.config import PretrainConfig
    from seppo.embedded.pretrain import build_tiny_model

    run = root / "run"
    unet, *_ = build_tiny_model(PretrainConfig(), root / "model")
    shutil.copytree(root / "model", run / "final")
    (run / "pool").mkdir()
    state = {k: v.contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(run / "pool" / "theta-0.safetensors"))
    save_file({k: v * 0.9 for k, v in state.items()}, str(run / "pool" / "theta-1.safetensors"))
    config = {"method": "seppo", "flipper": "sign", "reference": "uniform", "beta": 5000.0, "seed": 0,
              "model": {"path": "embedded:digits"}, "sampler": {"steps": 2, "guidance": 2.0, "eta": 0.0},
              "data": {"source": "embedded", "resolution": 16}, "train": {"iterations": 2, "updates_per_iteration": 2}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"step": s, "iteration": s // 2 + 1, "reference": 0, "loss": 0.69 - 0.01 * s, "flip_rate": 0.4,
             "implicit_acc": 0.5 + 0.05 * s} for s in range(4)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "summary.json").write_text(json.dumps({"wall_time_s": 1.0}))
    yield run
    torch.set_num_threads(threads)


def test_report_is_self_contained_html(run_dir, tmp_path):
    from seppo.evaluate import evaluate
    from seppo.report import write_report

    result = evaluate([str(run_dir), str(run_dir / "final")], names=["run", "final"], prompts=["a handwritten digit 1"],
                      judges=["digit"], seeds=[0], steps=2, guidance=2.0, progress=False, n_boot=50)
    path = write_report([run_dir], tmp_path / "r.html", eval_result=result, prompts=["a handwritten digit 1", "a handwritten digit 2"],
                        seeds=[0])
    text = path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert "html" in parser.tags and "table" in parser.tags
    # curves, snapshot reward, θ_0, θ_1 and the final grid
    assert len(parser.images) >= 5
    assert all(src.startswith("data:image/") for src in parser.images)
    assert all(link.startswith("data:") for link in parser.links)
    assert "http://" not in text and "https://" not in text
    assert "θ_1" in text and "flipper: sign" in text


def test_plot_curves_writes_png(run_dir, tmp_path):
    from seppo.report import plot_curves

    path = plot_curves([run_dir], tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snapshot_with_foreign_keys_is_an_error(run_dir, tmp_path):
    from seppo.errors import ModelError
    from seppo.models import load_for_sampling, load_snapshot

    bad = tmp_path / "theta-9.safetensors"
    save_file({"not.a.parameter": torch.zeros(1)}, str(bad))
    with pytest.raises(ModelError, match="not.a.parameter"):
        load_snapshot(load_for_sampling(str(run_dir)), bad)
