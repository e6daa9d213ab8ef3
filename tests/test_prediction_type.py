"""`model.prediction_type` overrides the folder's scheduler everywhere (issue 14, item 1):
the training target, the sampler's DDIM, the export, and what `seppo sample`/`eval` load.

A v-prediction override on the embedded ε-prediction model must train on v and generate as
v; before the fix the sampler built DDIM from the folder's scheduler config (ε) and the
export kept it.
"""

from __future__ import annotations

import json

import pytest

from seppo import paths
from seppo.backbone import load_backbone
from seppo.models import load_for_sampling
from seppo.sampler import ddim_schedule
from seppo.train import train


def test_the_sampler_follows_an_override(tiny_config, tmp_path):
    cfg = tiny_config(tmp_path / "unused")
    folder = paths.model_folder(cfg)
    assert load_backbone(folder).prediction_type == "epsilon"  # the embedded model's own
    bb = load_backbone(folder, prediction_type="v_prediction")
    assert bb.prediction_type == "v_prediction"
    assert ddim_schedule(bb, 2)[0].config.prediction_type == "v_prediction"


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_export_and_loading_follow_an_override(tiny_config, tmp_path, mode):
    cfg = tiny_config(tmp_path / "run", "model.prediction_type=v_prediction", f"train.mode={mode}")
    run = train(cfg)
    if mode == "full":
        config = json.loads((run / "final" / "scheduler" / "scheduler_config.json").read_text())
        assert config["prediction_type"] == "v_prediction"
    bb = load_for_sampling(str(run))  # what `seppo sample RUN` and `seppo eval RUN` use
    assert bb.prediction_type == "v_prediction"
    assert ddim_schedule(bb, 2)[0].config.prediction_type == "v_prediction"
