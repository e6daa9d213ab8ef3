"""`seppo.evaluate`: paired keys, determinism, and a summary that matches the per-image table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seppo.models import eval_seeds
from seppo.stats import bootstrap_ci, paired_win_rate

PROMPTS = ["a handwritten digit 3", "a handwritten digit 7"]
SAMPLER = dict(steps=2, guidance=2.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two untrained tiny models: A, and B = A with its output conv perturbed."""
    root = tmp_path_factory.mktemp("eval")
    threads = torch.get_num_threads()  # $SEPPO_CACHE is private already (conftest.py)
    torch.set_num_threads(1)  # a 16-pixel UNet runs ~10x faster on one thread than two on a busy 2-core box
    from diffusers import UNet2DConditionModel

    from seppo.config import PretrainConfig
    from seppo.embedded.pretrain import build_tiny_model

    a, b = root / "a", root / "b"
    build_tiny_model(PretrainConfig(), a)
    build_tiny_model(PretrainConfig(), b)
    unet = UNet2DConditionModel.from_pretrained(b / "unet")
    with torch.no_grad():
        unet.conv_out.weight.add_(0.5 * torch.randn_like(unet.conv_out.weight))
    unet.save_pretrained(b / "unet")
    yield str(a), str(b), root
    torch.set_num_threads(threads)


def _run(models, out=None, **kwargs):
    from seppo.evaluate import evaluate

    a, b, _ = models
    return evaluate([a, b], names=["A", "B"], prompts=PROMPTS, judges=["digit"], seeds=[0, 1], per_prompt=2,
                    progress=False, out=out, n_boot=200, **{**SAMPLER, **kwargs})


def test_plan_keys_are_shared_and_stable():
    from seppo.evaluate import sample_plan

    plan = sample_plan(PROMPTS, [5], per_prompt=3)
    keys = eval_seeds(5, 6)
    # key index k·P + p: image (p=1, k=2) is key 2·2 + 1 = 5
    assert plan.query("prompt_idx == 1 and k == 2")["key"].item() == keys[5]
    # one more sample per prompt keeps the earlier ones' keys
    bigger = sample_plan(PROMPTS, [5], per_prompt=4)
    assert set(plan["key"]) <= set(bigger["key"])
    assert plan["key"].is_unique


def test_evaluate_is_deterministic_and_paired(models, tmp_path):
    from PIL import Image

    first = _run(models, out=tmp_path, batch_size=3)
    second = _run(models, out=tmp_path / "again", batch_size=3)
    # same seeds => same images => same scores
    for name in ("samples-A.png", "samples-B.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), np.asarray(Image.open(tmp_path / "again" / name)))
    np.testing.assert_array_equal(first.scores["digit"].to_numpy(), second.scores["digit"].to_numpy())
    # another batch size draws the same noise; only float rounding in batched convolutions differs
    rebatched = _run(models, batch_size=8)
    np.testing.assert_allclose(first.scores["digit"].to_numpy(), rebatched.scores["digit"].to_numpy(), rtol=1e-3, atol=1e-6)
    by_model = {m: t.reset_index(drop=True) for m, t in first.scores.groupby("model")}
    assert by_model["A"][["prompt", "seed", "k", "key"]].equals(by_model["B"][["prompt", "seed", "k", "key"]])
    assert len(first.scores) == 2 * len(PROMPTS) * 2 * 2
    # different models give different images, so the comparison is not vacuous
    assert not np.array_equal(by_model["A"]["digit"], by_model["B"]["digit"])
    for name in ("scores.parquet", "eval.md", "eval.json", "samples-A.png", "samples-B.png"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["settings"]["resolution"] == {"A": 16, "B": 16}
    assert saved["settings"]["steps"] == 2 and saved["settings"]["guidance"] == 2.0
    assert set(first.diversity) == {"A", "B"}


def test_summary_matches_hand_computation(models):
    result = _run(models)
    scores = result.scores
    # unit = (prompt, seed): average the k samples, then bootstrap over the units
    units = {m: t.groupby(["prompt_idx", "seed"])["digit"].mean().to_numpy() for m, t in scores.groupby("model")}
    for row in result.summary:
        mean, lo, hi = bootstrap_ci(units[row["model"]], n_boot=200)
        assert row["mean"] == pytest.approx(mean) and row["lo"] == pytest.approx(lo) and row["hi"] == pytest.approx(hi)
        assert row["n"] == len(PROMPTS) * 2
    (pair,) = result.pairs
    want = paired_win_rate(units["A"], units["B"], n_boot=200)
    assert pair["a"] == "A" and pair["b"] == "B"
    assert pair["win_rate"] == pytest.approx(want["win_rate"])
    assert pair["p_value"] == pytest.approx(want["p_value"])
    hand_win = np.mean((units["A"] > units["B"]) + 0.5 * (units["A"] == units["B"]))
    assert pair["win_rate"] == pytest.approx(hand_win)
    markdown = result.table_markdown()
    assert "| A |" in markdown and "A vs B" in markdown


def test_score_images_keys_by_judge_name():
    from seppo.evaluate import score_images

    class Constant:
        name, scale = "const", "none"

        def score(self, images, prompts):
            return np.full(len(images), 2.0)

    out = score_images([None, None], ["x", "y"], [Constant()])
    np.testing.assert_array_equal(out["const"], [2.0, 2.0])
