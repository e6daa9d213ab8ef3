"""Pick-a-Digit: real digits, tokenizer, the two judges and the pair builder."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from transformers import CLIPTokenizer

from seppo.embedded.digits import digit_prompt, diversity, from_pil, parse_digit, real_digits, to_pil
from seppo.embedded.judge import Annotator, DigitJudge, load_annotator, load_digit_judge
from seppo.embedded.pairs import build_pick_a_digit
from seppo.embedded.tokenizer import TEXT_MAX_LENGTH, WORDS, build_text_encoder, write_tokenizer
from seppo.errors import DataError

PROMPTS = [digit_prompt(d) for d in range(10)] + [
    f"a handwritten {d} moving {way}" for d in range(10) for way in ("left", "right", "up", "down")
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One $SEPPO_CACHE for the module, so each judge is fitted once."""
    root = tmp_path_factory.mktemp("seppo_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEPPO_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def judge(cache) -> DigitJudge:
    return load_digit_judge()


@pytest.fixture(scope="module")
def annotator(cache) -> Annotator:
    return load_annotator()


# ---------------------------------------------------------------- digits


def test_split_is_disjoint_stratified_and_covers_all():
    x_all, y_all = real_digits("all")
    x_a, y_a = real_digits("annotator")
    x_j, y_j = real_digits("judge")
    assert x_all.shape == (1797, 16, 16) and x_all.dtype == np.float32
    assert x_all.min() == -1.0 and x_all.max() == 1.0
    # disjoint and covering: every real image lands in exactly one half
    rows = lambda x: {im.tobytes() for im in x}  # noqa: E731
    assert not rows(x_a) & rows(x_j)
    assert len(x_a) + len(x_j) == len(x_all)
    # stratified: class counts of the halves differ by at most one
    assert np.abs(np.bincount(y_a, minlength=10) - np.bincount(y_j, minlength=10)).max() <= 1
    # fixed: the same call gives the same half
    np.testing.assert_array_equal(real_digits("judge")[0], x_j)


def test_parse_digit():
    assert parse_digit("a handwritten digit 3") == 3
    assert parse_digit("a handwritten 3 moving left") == 3
    assert parse_digit("") is None
    assert parse_digit("a handwritten digit") is None
    assert all(parse_digit(digit_prompt(d)) == d for d in range(10))


def test_pil_round_trip():
    x, _ = real_digits("all")
    image = to_pil(x[0])
    assert image.mode == "L" and image.size == (16, 16)
    assert np.abs(from_pil(image) - x[0]).max() <= 1 / 127.5  # one grey level
    ints = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(np.asarray(to_pil(from_pil(Image.fromarray(ints)))), ints)
    assert np.asarray(to_pil(np.ones((16, 16)))).min() == 255  # ink is white


def test_diversity_by_hand():
    same = np.repeat(real_digits("all")[0][:1], 4, axis=0)
    assert diversity(same, np.zeros(4, dtype=int)) == 0.0
    # class 0: [0,0], [3,4], [0,4] -> distances 5, 3, 4 -> 4; class 1: [1,1], [1,-1] -> 2
    images = np.array([[[0, 0]], [[3, 4]], [[0, 4]], [[1, 1]], [[1, -1]]], dtype=np.float32)
    assert diversity(images, np.array([0, 0, 0, 1, 1])) == pytest.approx((4 + 2) / 2)


# ---------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    return build_text_encoder(tmp_path_factory.mktemp("text"))


def test_tokenizer_words_are_distinct_single_tokens(tmp_path):
    write_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    ids = [tokenizer(w, add_special_tokens=False).input_ids for w in WORDS]
    assert all(len(i) == 1 for i in ids), dict(zip(WORDS, ids))
    assert len({i[0] for i in ids}) == len(WORDS)
    assert tokenizer.unk_token_id not in {i[0] for i in ids}
    # an unknown word still tokenizes, character by character
    assert tokenizer.decode(tokenizer("zebra").input_ids, skip_special_tokens=True) == "zebra"


def test_every_prompt_round_trips_and_fits(text_encoder):
    tokenizer, _ = text_encoder
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        assert len(ids) <= TEXT_MAX_LENGTH
        assert tokenizer.unk_token_id not in ids[1:-1]
        assert tokenizer.decode(ids, skip_special_tokens=True) == prompt


def test_text_encoder_runs_and_pools_at_eos(text_encoder, tmp_path):
    tokenizer, model = text_encoder
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id != 2  # 2 selects transformers' legacy argmax pooling
    batch = tokenizer(PROMPTS, padding="max_length", max_length=TEXT_MAX_LENGTH,
                      truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(batch.input_ids)
    assert out.last_hidden_state.shape == (len(PROMPTS), TEXT_MAX_LENGTH, 32)
    # pooled output is the hidden state at the first eos
    first_eos = (batch.input_ids == tokenizer.eos_token_id).int().argmax(-1)
    expected = out.last_hidden_state[torch.arange(len(PROMPTS)), first_eos]
    torch.testing.assert_close(out.pooler_output, expected)
    # distinct prompts get distinct embeddings
    assert not torch.allclose(out.pooler_output[3], out.pooler_output[7])


def test_build_text_encoder_is_seeded_and_saved(text_encoder, tmp_path):
    _, model = text_encoder
    _, again = build_text_encoder(tmp_path)
    assert (tmp_path / "tokenizer" / "vocab.json").exists()
    assert (tmp_path / "text_encoder" / "config.json").exists()
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- judges


def test_judges_cached_under_seppo_cache(judge, annotator, cache):
    files = sorted(p.name for p in (cache / "embedded").iterdir())
    assert any(f.startswith("digit_judge-") for f in files)
    assert any(f.startswith("annotator-") for f in files)
    assert not any(".tmp" in f for f in files)


def test_each_judge_beats_80_percent_on_the_other_half(judge, annotator):
    x_a, y_a = real_digits("annotator")
    x_j, y_j = real_digits("judge")
    judge_accuracy = (judge.predict_proba(x_a).argmax(1) == y_a).mean()
    annotator_accuracy = (annotator.predict_proba(x_j).argmax(1) == y_j).mean()
    assert judge_accuracy > 0.8 and annotator_accuracy > 0.8


def test_digit_judge_scores_the_prompted_class(judge):
    x, y = real_digits("annotator")  # held out from the judge
    three = x[y == 3][0]
    proba = judge.model.predict_proba(three.reshape(1, -1))[0]
    scores = judge.score([to_pil(three)] * 2, ["a handwritten digit 3", "a handwritten digit 7"])
    assert scores.shape == (2,)
    np.testing.assert_allclose(scores, proba[[3, 7]], atol=1e-3)  # 8-bit PIL round trip
    assert scores[0] > 0.8 and scores[1] < 0.1
    assert judge.score([to_pil(three)], ["a handwritten 3 moving left"])[0] > 0.8
    with pytest.raises(DataError, match="a cat"):
        judge.score([to_pil(three)], ["a cat"])


def test_digit_judge_gives_noise_a_low_reward(judge):
    noise = np.random.default_rng(0).uniform(-1, 1, (50, 16, 16)).astype(np.float32)
    assert judge.score_arrays(noise, np.arange(50) % 10).mean() < 0.1


def test_annotator_prefer_is_antisymmetric_and_ties_identical(annotator):
    x, y = real_digits("judge")
    rng = np.random.default_rng(0)
    noise = to_pil(rng.uniform(-1, 1, (16, 16)))
    real_5 = to_pil(x[y == 5][0])
    other = to_pil(x[y == 5][1])
    assert annotator.prefer(real_5, real_5, 5) == 0.5
    assert annotator.prefer(real_5, noise, 5) == 1.0
    for a, b in [(real_5, noise), (real_5, other), (to_pil(x[y == 2][0]), real_5)]:
        assert annotator.prefer(a, b, 5) == 1.0 - annotator.prefer(b, a, 5)


# ---------------------------------------------------------------- pairs


def test_build_pick_a_digit(annotator, judge, tmp_path):
    x, y = real_digits("all")
    calls = []

    def real(prompts, seed):
        calls.append(("real", len(prompts)))
        rng = np.random.default_rng(seed)
        return [to_pil(x[rng.choice(np.flatnonzero(y == parse_digit(p)))]) for p in prompts]

    def noise(prompts, seed):
        calls.append(("noise", len(prompts)))
        rng = np.random.default_rng(seed)
        return [to_pil(rng.uniform(-1, 1, (16, 16))) for _ in prompts]

    out = tmp_path / "pick_a_digit.parquet"
    stats = build_pick_a_digit({"real": real, "base": noise}, prompts_per_digit=6, seed=0,
                               annotator=annotator, out_path=out, judge=judge, chunk_size=64)
    assert len(calls) <= 4  # batched: 120 images over 2 generators in chunks of 64
    assert [p.name for p in tmp_path.iterdir()] == ["pick_a_digit.parquet"]

    table = pq.read_table(out)
    assert table.num_rows == stats["pairs"] == 60
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {"caption": "string", "jpg_0": "binary", "jpg_1": "binary",
                     "label_0": "double", "label_1": "double",
                     "model_0": "string", "model_1": "string", "noise_0": "int64", "noise_1": "int64",
                     "utility_0": "double", "utility_1": "double"}
    rows = table.to_pylist()
    image = Image.open(io.BytesIO(rows[0]["jpg_0"]))
    assert image.mode == "L" and image.size == (16, 16)
    assert all(r["label_0"] in (0.0, 0.5, 1.0) and r["label_0"] + r["label_1"] == 1.0 for r in rows)

    mixed = [r for r in rows if r["model_0"] != r["model_1"] and r["label_0"] != 0.5]
    real_wins = [(r["label_0"] == 1.0) == (r["model_0"] == "real") for r in mixed]
    assert len(mixed) > 10 and np.mean(real_wins) > 0.8
    assert stats["win_rate"]["real"] > 0.8
    assert stats["tie_share"] == pytest.approx(stats["ties"] / 60)
    assert stats["winner_reward"] - stats["base_reward"] == pytest.approx(stats["winner_minus_base"])
    assert stats["winner_minus_base"] > 0.5

    # seeded: a second build gives the same file
    again = tmp_path / "again.parquet"
    build_pick_a_digit({"real": real, "base": noise}, prompts_per_digit=6, seed=0,
                       annotator=annotator, out_path=again, judge=judge)
    assert pq.read_table(again).equals(table)


# ---------------------------------------------------------------- the prebuilt shipped world


def test_shipped_world_is_copied_prebuilt_and_loads(tmp_path, monkeypatch):
    """A first run of the shipped config copies the packaged world instead of building it: no
    pretraining, no pair generation, no judge fit; the copies load with the real loading code.
    A key out of step with the package (configs/digits-seppo.yaml, BASE_VERSION) fails here."""
    from diffusers import UNet2DConditionModel

    from seppo import paths
    from seppo.config import load_config
    from seppo.embedded import preference, pretrain, world
    from seppo.embedded.budget import DEMO_CONFIG

    def built(*_, **__):
        raise AssertionError("built instead of copied")

    monkeypatch.setenv("SEPPO_CACHE", str(tmp_path / "cache"))
    for module, name in ((pretrain, "pretrain"), (world, "build_pick_a_digit"), (preference, "fit_on_pair_set")):
        monkeypatch.setattr(module, name, built)
    cfg = load_config(DEMO_CONFIG)
    world.ensure_world(cfg, progress=False)
    unet = UNet2DConditionModel.from_pretrained(paths.model_folder(cfg) / "unet")
    assert list(unet.config.block_out_channels) == cfg.pretrain.unet.block_out_channels
    parquet, stats = world.ensure_pick_a_digit(cfg.pretrain, progress=False)
    assert pq.read_table(parquet).num_rows == stats["pairs"] == 10 * cfg.pretrain.pairs_per_digit
    judge = preference.ensure_preference_judge(cfg.pretrain, progress=False)
    assert judge.meta["heldout_agreement"] > 0.8
    assert not list((tmp_path / "cache").rglob("*.prebuilt-*"))  # no half copy left behind

    # SEPPO_PREBUILT=0: the shipped world is built, as any other
    monkeypatch.setenv("SEPPO_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setenv("SEPPO_PREBUILT", "0")
    with pytest.raises(AssertionError, match="built instead of copied"):
        world.ensure_world(cfg, progress=False)
