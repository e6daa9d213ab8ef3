"""A LoRA run round-trips (issue 14, items 4 and 5): seppo samples, evaluates and reports on
its own LoRA runs, and plain diffusers' `load_lora_adapter` reproduces the trained policy.

Rank 4 with alpha 8 trains at scale alpha/rank = 2; an export that loses the alpha loads at
scale 1 and reaches only half of the trained change. The LoRA learns at lr 1e-2 so that the
change is far above float noise.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from seppo import cli, paths
from seppo.backbone import load_backbone
from seppo.models import LORA_FILE, load_for_sampling
from seppo.train import train

LORA = ["train.mode=lora", "train.lora_rank=4", "train.lora_alpha=8", "train.lr=1e-2"]


@pytest.fixture(scope="module")
def lora_run(tiny_config, tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("lora") / "run", *LORA)
    return train(cfg), cfg


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 1, 16, 16, generator=g), torch.tensor([10, 500]), torch.randn(2, 16, 32, generator=g)


def _trained_policy(run, cfg):
    """The policy as training left it: the base with the last pool snapshot θ_K in its adapter."""
    bb = load_backbone(paths.model_folder(cfg))
    bb.setup_training("lora", lora_rank=4, lora_alpha=8, lora_targets=cfg.train.lora_targets)
    bb.load_trainable_state(load_file(str(run / "pool" / "theta-2.safetensors")))
    return bb.unet.eval()


def test_plain_diffusers_loading_reproduces_the_trained_policy(lora_run, inputs):
    run, cfg = lora_run
    x, t, hidden = inputs
    with torch.no_grad():
        trained = _trained_policy(run, cfg)(x, t, encoder_hidden_states=hidden).sample
        plain = UNet2DConditionModel.from_pretrained(paths.model_folder(cfg) / "unet").eval()
        base = plain(x, t, encoder_hidden_states=hidden).sample
        plain.load_lora_adapter(str(run / "final"), weight_name=LORA_FILE, prefix="unet")
        loaded = plain(x, t, encoder_hidden_states=hidden).sample
    change = (trained - base).abs().max().item()
    assert change > 1e-3  # the LoRA did learn something measurable
    assert (loaded - trained).abs().max().item() < 1e-3 * change


def test_seppo_loads_its_lora_run_as_trained(lora_run, inputs):
    run, cfg = lora_run
    x, t, hidden = inputs
    with torch.no_grad():
        trained = _trained_policy(run, cfg)(x, t, encoder_hidden_states=hidden).sample
        for spec in (str(run), f"{paths.model_folder(cfg)}+{run / 'final'}"):
            loaded = load_for_sampling(spec).unet(x, t, encoder_hidden_states=hidden).sample
            assert (loaded - trained).abs().max().item() < 1e-5, spec


def test_sample_eval_and_report_on_a_lora_run(lora_run, tmp_path, capsys):
    run, _ = lora_run
    assert cli.main(["sample", str(run), "--prompt", "a handwritten digit 3", "--n", "2", "--steps", "2",
                     "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").exists()
    assert cli.main(["eval", str(run), "--seeds", "0", "--per-prompt", "1", "--steps", "2",
                     "--out", str(tmp_path / "eval")]) == 0
    assert cli.main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 0
    assert "error" not in capsys.readouterr().err
