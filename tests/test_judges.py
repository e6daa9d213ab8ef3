"""CLIP-based judges and the registry, on tiny random-weight models of the real classes.

Scores of random weights mean nothing, so each test checks the shape, finiteness and
determinism, and one property that a wrong formula would break: the judge's number equals
the score formula computed here by hand from the model's own features.
"""

import json
import math
import string
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_hps_convert import openclip_encode_image, openclip_encode_text, random_openclip_state_dict, tiny_config
from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

from seppo.errors import ConfigError, ModelError
from seppo.judges import registry
from seppo.judges.clip import AestheticJudge, ClipScoreJudge, HPSv2Judge, ImageRewardJudge, PickScoreJudge, aesthetic_mlp
from seppo.judges.registry import JUDGE_NAMES, load_judge

# Characters and end-of-word characters (BPE with no merges), then the specials last so the
# end-of-text id is the largest, as in CLIP (open_clip pools at the argmax id).
_CHARS = list(string.ascii_lowercase + string.digits)
_TOKENS = ["!", *_CHARS, *(c + "</w>" for c in _CHARS), "<|startoftext|>", "<|endoftext|>"]
PAD, BOS, EOS = 0, len(_TOKENS) - 2, len(_TOKENS) - 1
PROMPTS = ["a red cat", "a handwritten digit 7", "a blue dog on a hill"]


def _config():
    return tiny_config(vocab_size=len(_TOKENS), bos=BOS, eos=EOS, pad=PAD)


def _save_processor(folder):
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(_TOKENS)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(folder, pad_token="!")
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size=16)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny CLIP folder: model + tokenizer + image processor, as from_pretrained expects."""
    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    CLIPModel(_config()).save_pretrained(folder)
    _save_processor(folder)
    return folder


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(0)
    rgb = [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(2)]
    grey = Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L")  # a generated digit
    return [*rgb, grey]


@pytest.fixture(scope="session")
def pickscore(clip_dir):
    return PickScoreJudge(clip_dir, batch_size=2)  # 2 < 3 images: exercises batching


def _features(model, processor, images, prompts):
    """Unit-length text and image features, straight from the model."""
    pixels = processor.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
    tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels)
        text = model.get_text_features(**tokens)
    pooled = lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output  # noqa: E731
    return F.normalize(pooled(text), dim=-1), F.normalize(pooled(image), dim=-1), tokens, pixels


def test_tiny_tokenizer_is_real(pickscore):
    tokenizer = pickscore.embedder.processor.tokenizer
    ids = [tokenizer(word)["input_ids"] for word in ("cat", "dog", "7")]
    assert ids[0] != ids[1] != ids[2]
    assert ids[0][0] == BOS and ids[0][-1] == EOS and len(ids[0]) == 5


def test_pickscore_is_logit_scale_exp_times_cosine(pickscore, images):
    scores = pickscore.score(images, PROMPTS)
    assert scores.shape == (3,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    model = pickscore.embedder.model
    text, image, _, _ = _features(model, pickscore.embedder.processor, images, PROMPTS)
    expected = model.logit_scale.detach().exp() * (text * image).sum(-1)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert math.isclose(pickscore.cosine_scale(), math.exp(2.6592), rel_tol=1e-5)  # CLIP's init τ
    np.testing.assert_array_equal(pickscore.score(images, PROMPTS), scores)
    assert pickscore.name == "pickscore"


def test_clip_score_is_100_cosine_and_batch_independent(clip_dir, images):
    judge = ClipScoreJudge(clip_dir, batch_size=16)
    scores = judge.score(images, PROMPTS)
    text, image, _, _ = _features(judge.embedder.model, judge.embedder.processor, images, PROMPTS)
    np.testing.assert_allclose(scores, 100 * (text * image).sum(-1).numpy(), rtol=1e-5, atol=1e-4)
    assert np.all(np.abs(scores) <= 100)
    # Scoring one pair at a time gives the same numbers as one batch.
    single = np.concatenate([judge.score([im], [p]) for im, p in zip(images, PROMPTS)])
    np.testing.assert_allclose(single, scores, rtol=1e-5, atol=1e-4)
    assert judge.score([], []).shape == (0,)
    with pytest.raises(ValueError, match="2 images but 3 prompts"):
        judge.score(images[:2], PROMPTS)


@pytest.fixture(scope="session")
def hps_checkpoint(tmp_path_factory):
    """A tiny HPS-style file: open_clip layout, wrapped in state_dict, DataParallel prefix,
    stored beside the tokenizer and image processor (the default processor folder)."""
    folder = tmp_path_factory.mktemp("tiny-hps")
    state = random_openclip_state_dict(_config(), seed=3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "HPS_v2_compressed.pt")
    _save_processor(folder)
    return folder / "HPS_v2_compressed.pt", state


def test_hps_matches_100_cosine_of_openclip_features(hps_checkpoint, images):
    path, state = hps_checkpoint
    judge = HPSv2Judge(path, clip_config=_config())
    scores = judge.score(images, PROMPTS)
    assert judge.name == "hps" and scores.shape == (3,) and np.isfinite(scores).all()
    # The same features from the hand-written open_clip forward on the original tensors.
    _, _, tokens, pixels = _features(judge.embedder.model, judge.embedder.processor, images, PROMPTS)
    text = F.normalize(openclip_encode_text(state, tokens["input_ids"], _config()), dim=-1)
    image = F.normalize(openclip_encode_image(state, pixels, _config()), dim=-1)
    np.testing.assert_allclose(scores, 100 * (text * image).sum(-1).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_hps_versions(hps_checkpoint):
    path, _ = hps_checkpoint
    assert HPSv2Judge(path, version="v2.1", clip_config=_config()).name == "hpsv2.1"
    with pytest.raises(ConfigError, match="'v3'"):
        HPSv2Judge(path, version="v3", clip_config=_config())


def _head_state(in_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"layers.{k}": torch.randn(v.shape, generator=g) * 0.3 for k, v in aesthetic_mlp(in_dim).state_dict().items()}


def test_aesthetic_mlp_has_the_laion_keys():
    assert set(aesthetic_mlp(768).state_dict()) == {
        f"{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")
    }
    assert aesthetic_mlp(768)[0].weight.shape == (1024, 768) and aesthetic_mlp(768)[7].weight.shape == (1, 16)


def test_aesthetic_is_the_linear_mlp_on_the_normalised_image_embedding(clip_dir, images, tmp_path):
    head = _head_state(16)
    torch.save(head, tmp_path / "head.pth")
    judge = AestheticJudge(clip_dir, tmp_path / "head.pth")
    scores = judge.score(images, ["ignored"] * 3)
    assert judge.name == "aesthetic" and scores.shape == (3,) and np.isfinite(scores).all()
    _, v, _, _ = _features(judge.embedder.model, judge.embedder.processor, images, ["x"] * 3)
    x = v
    for i in (0, 2, 4, 6, 7):  # eval mode: dropout is the identity and there is no activation
        x = x @ head[f"layers.{i}.weight"].T + head[f"layers.{i}.bias"]
    np.testing.assert_allclose(scores, x.squeeze(-1).numpy(), rtol=1e-4, atol=1e-4)
    # The prompt plays no part.
    np.testing.assert_array_equal(judge.score(images, PROMPTS), scores)


def test_aesthetic_head_errors_name_the_file(clip_dir, tmp_path):
    torch.save(_head_state(768), tmp_path / "vit_l14_head.pth")
    with pytest.raises(ModelError, match="vit_l14_head.pth does not fit"):
        AestheticJudge(clip_dir, tmp_path / "vit_l14_head.pth")
    with pytest.raises(ModelError, match="aesthetic head file not found: .*nope.pth"):
        AestheticJudge(clip_dir, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(ModelError, match="cannot read aesthetic head .*junk.pth"):
        AestheticJudge(clip_dir, tmp_path / "junk.pth")


def test_missing_or_unreadable_model_folders_name_the_path(tmp_path, clip_dir):
    with pytest.raises(ModelError, match="CLIP model folder not found: .*no-such-dir"):
        PickScoreJudge(tmp_path / "no-such-dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load CLIP model from .*empty"):
        ClipScoreJudge(tmp_path / "empty")
    with pytest.raises(ModelError, match="cannot load CLIP processor from .*empty"):
        ClipScoreJudge(clip_dir, processor_path=tmp_path / "empty")
    with pytest.raises(ModelError, match="HPS checkpoint not found"):
        HPSv2Judge(tmp_path / "HPS_v2.pt", clip_config=_config())


def test_imagereward_without_its_package_is_a_one_line_model_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ImageReward", None)  # makes `import ImageReward` fail
    with pytest.raises(ModelError, match="image-reward") as info:
        ImageRewardJudge(tmp_path / "ImageReward.pt")
    assert "\n" not in str(info.value)


def test_registry_builds_judges_and_names_bad_input(clip_dir, monkeypatch):
    assert {"digit", "preference", "oracle", "stroke", "pickscore", "clip", "hps", "hpsv2.1", "aesthetic", "imagereward",
            "video-digit", "motion", "consistency", "video-prompt", "video-oracle"} == set(JUDGE_NAMES)
    assert load_judge("motion").name == "motion"  # the embedded video judges need no weights
    judge = load_judge("clip", {"model": str(clip_dir)})
    assert isinstance(judge, ClipScoreJudge)
    with pytest.raises(ConfigError, match="unknown judge 'pick'"):
        load_judge("pick", {})
    with pytest.raises(ConfigError, match=r"needs paths \['head'\]"):
        load_judge("aesthetic", {"clip": str(clip_dir)})
    with pytest.raises(ConfigError, match=r"not \['modle'\]"):
        load_judge("pickscore", {"modle": str(clip_dir)})
    # The digit judge is built only when asked for.
    sentinel = object()
    monkeypatch.setattr(registry, "load_digit_judge", lambda: sentinel)
    assert load_judge("digit") is sentinel
