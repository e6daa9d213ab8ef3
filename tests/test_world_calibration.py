"""Pick-a-Digit as a world: its pair sets, its learned preference judge, the oracle judges, and
Diffusion-DPO's implicit accuracy on held-out pairs (issues 10 and 16)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.ndimage import gaussian_filter

from seppo.embedded.digits import digit_prompt, parse_digit, real_digits, to_pil
from seppo.embedded.judge import load_annotator
from seppo.embedded.pairs import build_pick_a_digit
from seppo.embedded.preference import FitSettings, PreferenceJudge, fit_on_pair_set
from seppo.embedded.world import ensure_pick_a_digit
from seppo.evaluate import sample_plan
from seppo.implicit import implicit_accuracy_curve
from seppo.judges.registry import JUDGE_NAMES, load_judge
from seppo.train import train


def _noise_keys(parquet) -> set[int]:
    table = pq.read_table(parquet, columns=["noise_0", "noise_1"]).to_pydict()
    return set(table["noise_0"]) | set(table["noise_1"])


# ---------------------------------------------------------------- the learned judge


@pytest.fixture(scope="module")
def degraded_pairs(tmp_path_factory):
    """Annotator-labelled pairs whose two sides are real digits under random degradations
    (blur, faint or heavy ink, shifts, another digit, noise): a fast stand-in for generators."""
    x, y = real_digits("judge")

    def generator(prompts, seed):
        rng = np.random.default_rng(seed)
        out = []
        for p in prompts:
            d = parse_digit(p) if rng.random() < 0.8 else int(rng.integers(10))
            im = x[rng.choice(np.flatnonzero(y == d))].copy()
            kind = rng.integers(5)
            if kind == 1:
                im = gaussian_filter(im, rng.uniform(0.5, 1.5))
            elif kind == 2:
                im = np.clip(im + rng.uniform(-0.8, 0.8), -1, 1)  # faint or heavy ink
            elif kind == 3:
                im = np.roll(im, tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
            elif kind == 4:
                im = np.clip(im + rng.normal(0, rng.uniform(0.2, 0.8), im.shape), -1, 1)
            out.append(to_pil(im))
        return out

    out = tmp_path_factory.mktemp("judge-pairs") / "pairs.parquet"
    stats = build_pick_a_digit({"a": generator, "b": generator}, prompts_per_digit=80, seed=5,
                               annotator=load_annotator(), out_path=out)
    return out, stats


def test_learned_judge_beats_chance_and_a_shuffled_fit_does_not(degraded_pairs):
    parquet, _ = degraded_pairs
    settings = FitSettings(epochs=15)
    model, meta = fit_on_pair_set(parquet, settings)
    _, broken = fit_on_pair_set(parquet, settings, shuffle_labels=True)
    print(meta, broken)
    assert meta["heldout_pairs"] == 160 and meta["heldout_decided"] > 100
    # Bound: 0.65 on held-out annotator pairs. Chance is 0.5, so a fit on shuffled labels
    # (which carry no preference) must stay under it.
    assert meta["heldout_agreement"] > 0.65, meta
    assert broken["heldout_agreement"] < 0.65, broken
    judge = PreferenceJudge(model, meta)
    x, y = real_digits("judge")
    images = [to_pil(x[y == 3][0]), to_pil(np.zeros((16, 16)) - 1)]  # a real 3, a blank canvas
    scores = judge.score(images, [digit_prompt(3)] * 2)
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_registry_names_the_world_judges():
    assert {"digit", "preference", "oracle", "stroke"} <= set(JUDGE_NAMES)
    oracle, stroke = load_judge("oracle"), load_judge("stroke")
    assert "simulation's oracle" in oracle.scale and "real data lacks" in oracle.scale
    x, y = real_digits("annotator")
    images = [to_pil(x[y == 7][0]), to_pil(np.zeros((16, 16)) - 1)]
    prompts = [digit_prompt(7)] * 2
    u, s = oracle.score(images, prompts), stroke.score(images, prompts)
    assert u[0] > u[1] and 0 <= s.min() and s.max() <= 1
    annotator = load_annotator()
    arrays = np.stack([x[y == 7][0], np.zeros((16, 16)) - 1])
    # the oracle is u itself (up to the 8-bit PNG round trip of the images)
    np.testing.assert_allclose(u, annotator.utility(arrays, np.array([7, 7])), atol=1e-3)
    assert s[1] == 0.0  # a blank canvas has no ink at all: far from any digit's pen weight


# ---------------------------------------------------------------- pair sets of the world


@pytest.fixture(scope="module")
def tiny_world(tiny_config, tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("unused"))
    train, stats = ensure_pick_a_digit(cfg.pretrain, progress=False)
    heldout, held_stats = ensure_pick_a_digit(cfg.pretrain, progress=False, split="heldout", pairs_per_digit=4)
    judge, judge_stats = ensure_pick_a_digit(cfg.pretrain, progress=False, split="judge", pairs_per_digit=3)
    return cfg, {"train": (train, stats), "heldout": (heldout, held_stats), "judge": (judge, judge_stats)}


def test_pair_sets_share_no_noise(tiny_world):
    _, sets = tiny_world
    keys = {name: _noise_keys(path) for name, (path, _) in sets.items()}
    assert len(keys["train"]) == 2 * sets["train"][1]["pairs"]  # every image its own noise
    assert not keys["train"] & keys["judge"]
    assert not keys["train"] & keys["heldout"]
    assert not keys["judge"] & keys["heldout"]
    # nor any evaluation noise of the demo's plan
    eval_keys = set(sample_plan([digit_prompt(d) for d in range(10)], [0, 1, 2], 20)["key"])
    assert not eval_keys & (keys["train"] | keys["judge"] | keys["heldout"])


def test_data_summary_reports_size_and_gap_against_the_config(tiny_world):
    cfg, sets = tiny_world
    path, stats = sets["train"]
    table = pq.read_table(path).to_pydict()
    assert stats["pairs"] == len(table["caption"]) == 10 * cfg.pretrain.pairs_per_digit
    u0, u1, label = (np.asarray(table[c]) for c in ("utility_0", "utility_1", "label_0"))
    decided = label != 0.5
    assert stats["ties"] == int((~decided).sum())
    assert stats["utility_gap_mean"] == pytest.approx(np.abs(u0 - u1)[decided].mean())
    # labels follow the recorded utilities: the winner has the higher one
    assert np.all((u0 > u1)[decided] == (label[decided] == 1.0))
    assert sets["heldout"][1]["pairs"] == 40 and sets["judge"][1]["pairs"] == 30
    assert sets["heldout"][1]["split"] == "heldout"


def test_pairs_come_only_from_the_named_generators(tiny_world, tiny_config):
    cfg, sets = tiny_world
    mixed = pq.read_table(sets["train"][0], columns=["model_0", "model_1"]).to_pydict()
    assert set(mixed["model_0"]) | set(mixed["model_1"]) == {"base", "strong"}  # the default: both
    only = tiny_config(cfg.output_dir, "pretrain.pair_generators=[strong]")
    path, stats = ensure_pick_a_digit(only.pretrain, progress=False)
    assert path != sets["train"][0]  # its own cache entry
    table = pq.read_table(path, columns=["model_0", "model_1"]).to_pydict()
    assert set(table["model_0"]) | set(table["model_1"]) == {"strong"}
    assert stats["images_per_generator"] == {"strong": 2 * stats["pairs"]} and stats["base_reward"] is None


def test_heldout_implicit_accuracy_uses_pairs_never_trained_on(tiny_world, tiny_config, tmp_path):
    cfg, sets = tiny_world
    run = train(tiny_config(tmp_path / "dpo", "method=dpo", "train.batch_size=4"))
    curve = implicit_accuracy_curve(run, sets["heldout"][0], n_train=8, n_heldout=8, draws=1)
    train_keys, held_keys = set(curve["train_keys"]), set(curve["heldout_keys"])
    assert train_keys and held_keys and not train_keys & held_keys
    # image level too: no held-out image shares its noise with any training image
    images = lambda pairs: {k for pair in pairs for k in pair}  # noqa: E731
    assert not images(curve["heldout_keys"]) & _noise_keys(sets["train"][0])
    steps = [r["step"] for r in curve["rows"]]
    assert steps == [0, 2, 4]  # θ_0 and a snapshot after each of K = 2 iterations of U = 2
    assert curve["rows"][0]["train_acc"] == 0.0  # θ_0 against itself: every logit is exactly 0
    assert all(0.0 <= r[k] <= 1.0 for r in curve["rows"] for k in ("train_acc", "heldout_acc"))
