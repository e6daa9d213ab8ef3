"""backbone, sampler and models on tiny SD-1.5- and SDXL-architecture folders (tests/tiny_models.py)."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny_models import (
    IMAGE_SIZE,
    LATENT_SIZE,
    MAX_LENGTH,
    TEXT_DIM,
    make_tiny_sd15,
    make_tiny_sdxl,
    unet_state_dict_to_ldm,
    write_tiny_clip_tokenizer,
)

from seppo import models
from seppo.backbone import REFERENCE_ADAPTER, Backbone, load_backbone
from seppo.errors import ModelError
from seppo.sampler import generate

PROMPTS = ["a photo of a red cat", "a blue car"]


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return make_tiny_sd15(tmp_path_factory.mktemp("tiny_sd15"))


@pytest.fixture(scope="module")
def sd_v_dir(tmp_path_factory):
    return make_tiny_sd15(tmp_path_factory.mktemp("tiny_sd15_v"), prediction_type="v_prediction")


@pytest.fixture(scope="module")
def xl_dir(tmp_path_factory):
    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl"))


@pytest.fixture(scope="module")
def sd(sd_dir) -> Backbone:
    """A shared SD backbone for read-only tests (nothing here calls setup_training on it)."""
    return load_backbone(sd_dir)


@pytest.fixture(scope="module")
def xl(xl_dir) -> Backbone:
    return load_backbone(xl_dir)


@pytest.fixture(scope="module")
def inputs(sd):
    """Fixed noisy latents, timesteps and conditioning for the prediction tests."""
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=g)
    t = torch.tensor([37, 801])
    return x_t, t, sd.encode_prompts(PROMPTS)


# ---------------------------------------------------------------- tiny tokenizer


def test_tiny_tokenizer_gives_each_word_its_own_id(tmp_path):
    tok = write_tiny_clip_tokenizer(tmp_path / "tok")
    assert tok.model_max_length == MAX_LENGTH
    words = ["a", "photo", "of", "cat", "dog", "red", "blue", "car"]
    ids = [tok(w).input_ids for w in words]
    # each word is one token between bos and eos, and no two words share an id
    assert all(len(i) == 3 and i[0] == tok.bos_token_id and i[-1] == tok.eos_token_id for i in ids)
    assert len({i[1] for i in ids}) == len(words)
    assert tok.convert_ids_to_tokens(tok("a photo of a red cat").input_ids[1:-1]) == [
        "a</w>", "photo</w>", "of</w>", "a</w>", "red</w>", "cat</w>"]
    # an unknown word still tokenizes, character by character
    assert tok.convert_ids_to_tokens(tok("zq").input_ids[1:-1]) == ["z", "q</w>"]


# ---------------------------------------------------------------- SD-1.5 layout


def test_sd_loads_with_the_folder_components(sd, sd_dir):
    assert not sd.is_sdxl and not sd.is_video and sd.vae is not None
    assert sd.prediction_type == "epsilon" and sd.num_train_timesteps == 1000
    assert sd.vae_scale_factor == 2 and sd.sample_shape(IMAGE_SIZE) == (4, LATENT_SIZE, LATENT_SIZE)
    assert sd.source == str(sd_dir)
    assert not any(p.requires_grad for m in (*sd.text_encoders, sd.vae) for p in m.parameters())


def test_sd_encode_prompts_is_the_text_encoders_last_hidden_state(sd):
    cond = sd.encode_prompts(PROMPTS)
    assert set(cond) == {"hidden"} and cond["hidden"].shape == (2, MAX_LENGTH, TEXT_DIM)
    ids = sd.tokenizers[0](PROMPTS, padding="max_length", max_length=MAX_LENGTH, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = sd.text_encoders[0](ids).last_hidden_state
    torch.testing.assert_close(cond["hidden"], expected)
    assert not torch.allclose(cond["hidden"][0], cond["hidden"][1])  # different prompts differ
    assert sd.null_cond(3)["hidden"].shape == (3, MAX_LENGTH, TEXT_DIM)
    torch.testing.assert_close(sd.null_cond(1)["hidden"], sd.encode_prompts([""])["hidden"])


def test_sd_encode_images_scales_the_vae_mean_and_decode_round_trips_shapes(sd):
    pixels = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    latents = sd.encode_images(pixels)
    assert latents.shape == (2, 4, LATENT_SIZE, LATENT_SIZE)
    with torch.no_grad():
        mean = sd.vae.encode(pixels).latent_dist.mean
    scale = sd.vae.config.scaling_factor
    assert scale == pytest.approx(0.18215)
    torch.testing.assert_close(latents, mean * scale)
    back = sd.decode(latents)
    assert back.shape == pixels.shape and back.min() >= -1 and back.max() <= 1
    with torch.no_grad():
        expected = sd.vae.decode(mean).sample.clamp(-1, 1)  # decode undoes the scaling
    torch.testing.assert_close(back, expected)


def test_sd_predict_shape_and_batch_independence(sd, inputs):
    x_t, t, cond = inputs
    with torch.no_grad():
        out = sd.predict(x_t, t, cond)
        first = sd.predict(x_t[:1], t[:1], {k: v[:1] for k, v in cond.items()})
    assert out.shape == x_t.shape and out.dtype == torch.float32
    torch.testing.assert_close(out[:1], first, atol=1e-5, rtol=1e-5)


def _by_hand(backbone, t):
    a = backbone.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)  # ᾱ_t, (B, 1, 1, 1)
    return a.sqrt(), (1 - a).sqrt()


def test_add_noise_and_epsilon_target_by_hand(sd):
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 499, 999])
    s, n = _by_hand(sd, t)
    torch.testing.assert_close(sd.add_noise(x0, eps, t), s * x0 + n * eps)
    assert torch.equal(sd.target(x0, eps, t), eps)
    # scaled_linear betas: ᾱ_0 = 1 − 0.00085, ᾱ decreases to nearly 0
    assert sd.scheduler.alphas_cumprod[0].item() == pytest.approx(1 - 0.00085)
    assert sd.scheduler.alphas_cumprod[999].item() < 0.01


def test_v_prediction_target_by_hand(sd_v_dir):
    bb = load_backbone(sd_v_dir)
    assert bb.prediction_type == "v_prediction"
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([5, 300, 990])
    s, n = _by_hand(bb, t)
    torch.testing.assert_close(bb.target(x0, eps, t), s * eps - n * x0)
    torch.testing.assert_close(bb.add_noise(x0, eps, t), s * x0 + n * eps)
    # an explicit prediction_type overrides the scheduler's
    assert torch.equal(load_backbone(sd_v_dir, prediction_type="epsilon").target(x0, eps, t), eps)


# ---------------------------------------------------------------- SDXL layout


def test_sdxl_conditioning_concatenates_penultimate_states_and_pools_from_the_second(xl):
    assert xl.is_sdxl
    cond = xl.encode_prompts(PROMPTS)
    assert set(cond) == {"hidden", "pooled"}
    assert cond["hidden"].shape == (2, MAX_LENGTH, 2 * TEXT_DIM) and cond["pooled"].shape == (2, TEXT_DIM)
    ids = xl.tokenizers[0](PROMPTS, padding="max_length", max_length=MAX_LENGTH, return_tensors="pt").input_ids
    with torch.no_grad():
        one = xl.text_encoders[0](ids, output_hidden_states=True).hidden_states[-2]
        two = xl.text_encoders[1](ids, output_hidden_states=True)
    torch.testing.assert_close(cond["hidden"], torch.cat([one, two.hidden_states[-2]], dim=-1))
    torch.testing.assert_close(cond["pooled"], two.text_embeds)
    null = xl.null_cond(2)
    assert null["hidden"].shape == (2, MAX_LENGTH, 2 * TEXT_DIM) and null["pooled"].shape == (2, TEXT_DIM)


def test_sdxl_time_ids_by_hand(xl):
    original = torch.tensor([[512, 768], [1024, 1024]])
    crop = torch.tensor([[0, 32], [7, 0]])
    ids = xl.time_ids(original, crop, 16)
    expected = torch.tensor([[512, 768, 0, 32, 16, 16], [1024, 1024, 7, 0, 16, 16]], dtype=torch.float32)
    assert torch.equal(ids, expected)


def test_sdxl_predict_uses_time_ids(xl):
    cond = xl.encode_prompts(PROMPTS)
    x_t = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([100, 700])
    cond["time_ids"] = xl.time_ids(torch.tensor([[16, 16]] * 2), torch.zeros(2, 2, dtype=torch.long), 16)
    other = dict(cond, time_ids=xl.time_ids(torch.tensor([[64, 32]] * 2), torch.tensor([[8, 4]] * 2), 16))
    with torch.no_grad():
        out, out_other = xl.predict(x_t, t, cond), xl.predict(x_t, t, other)
    assert out.shape == x_t.shape
    assert not torch.allclose(out, out_other)  # micro-conditioning reaches the UNet


def test_sdxl_generate_without_guidance(xl):
    cond = xl.encode_prompts(PROMPTS)
    cond["time_ids"] = xl.time_ids(torch.tensor([[16, 16]] * 2), torch.zeros(2, 2, dtype=torch.long), 16)
    x = generate(xl, cond, shape=xl.sample_shape(IMAGE_SIZE), seed=0, step=0, indices=[0, 1], steps=2, guidance=1.0)
    assert x.shape == (2, 4, LATENT_SIZE, LATENT_SIZE) and torch.isfinite(x).all()


def test_sdxl_guided_generate_with_time_ids(xl):
    cond = xl.encode_prompts(PROMPTS)
    cond["time_ids"] = xl.time_ids(torch.tensor([[16, 16]] * 2), torch.zeros(2, 2, dtype=torch.long), 16)
    x = generate(xl, cond, shape=xl.sample_shape(IMAGE_SIZE), seed=0, step=0, indices=[0, 1], steps=2, guidance=3.0)
    assert x.shape == (2, 4, LATENT_SIZE, LATENT_SIZE) and torch.isfinite(x).all()


def test_sdxl_sample_generates_images(xl):
    images = models.sample(xl, PROMPTS, seeds=[1, 2], resolution=IMAGE_SIZE, steps=2, guidance=3.0)
    assert [im.size for im in images] == [(IMAGE_SIZE, IMAGE_SIZE)] * 2


# ---------------------------------------------------------------- single-file UNet


@pytest.mark.parametrize("layout", ["diffusers", "ldm"])
def test_single_file_unet_predicts_like_the_folder(sd, sd_dir, inputs, tmp_path, layout):
    """`from_single_file(config=folder, subfolder="unet")` takes a file whose keys equal the
    model's diffusers keys as-is, and converts one in the original LDM layout
    (`model.diffusion_model.input_blocks...`)."""
    state = {k: v.contiguous() for k, v in sd.unet.state_dict().items()} if layout == "diffusers" \
        else unet_state_dict_to_ldm(sd.unet)
    file = tmp_path / f"unet_{layout}.safetensors"
    save_file(state, str(file))
    single = load_backbone(sd_dir, single_file=str(file))
    x_t, t, cond = inputs
    with torch.no_grad():
        torch.testing.assert_close(single.predict(x_t, t, cond), sd.predict(x_t, t, cond), atol=0, rtol=0)


# ---------------------------------------------------------------- errors


def test_folder_without_unet_names_the_missing_path(sd_dir, tmp_path):
    broken = tmp_path / "no_unet"
    shutil.copytree(sd_dir, broken, ignore=shutil.ignore_patterns("unet"))
    with pytest.raises(ModelError, match="unet/") as info:
        load_backbone(broken)
    assert str(broken / "unet") in str(info.value)


@pytest.mark.parametrize("component, weights", [
    ("unet", "diffusion_pytorch_model.safetensors"),
    ("vae", "diffusion_pytorch_model.safetensors"),
    ("text_encoder", "model.safetensors"),
])
def test_corrupt_component_weights_name_the_component(sd_dir, tmp_path, component, weights):
    broken = tmp_path / "corrupt"
    shutil.copytree(sd_dir, broken)
    (broken / component / weights).write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError) as info:
        load_backbone(broken)
    assert str(broken / component) in str(info.value)


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelError) as info:
        load_backbone(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("name", ["garbage.safetensors", "garbage.ckpt"])
def test_single_file_that_is_not_a_checkpoint_is_named(sd_dir, tmp_path, name):
    file = tmp_path / name
    file.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelError) as info:
        load_backbone(sd_dir, single_file=str(file))
    assert str(file) in str(info.value)
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(ModelError, match="absent.safetensors"):
        load_backbone(sd_dir, single_file=str(missing))


# ---------------------------------------------------------------- policy / reference switching


def _perturbed(state, seed=6, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()}


def _train_step(bb, inputs):
    x_t, t, cond = inputs
    params = [p for _, p in bb.trainable_named_parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    loss = bb.predict(x_t, t, cond).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def _check_reference_switching(bb, inputs, base_out):
    """Shared invariants of full and LoRA modes; returns the perturbed snapshot loaded as reference."""
    x_t, t, cond = inputs
    predict = lambda: bb.predict(x_t, t, cond).detach()  # noqa: E731
    torch.testing.assert_close(predict(), base_out)  # θ_0 is the base model
    with bb.as_reference():
        torch.testing.assert_close(predict(), base_out)  # reference starts as θ_0 too

    snapshot = bb.trainable_state()
    assert snapshot and all(v.device.type == "cpu" and not v.requires_grad for v in snapshot.values())
    bb.load_reference_state(_perturbed(snapshot))
    torch.testing.assert_close(predict(), base_out)  # the policy is untouched
    with bb.as_reference():
        ref_out = predict()
    assert not torch.allclose(ref_out, base_out, atol=1e-4)
    torch.testing.assert_close(predict(), base_out)  # and restored on leaving

    with pytest.raises(RuntimeError, match="boom"):
        with bb.as_reference():
            raise RuntimeError("boom")
    torch.testing.assert_close(predict(), base_out)  # restored after an error too

    before = bb.trainable_state()
    kept = {k: v.clone() for k, v in before.items()}
    _train_step(bb, inputs)
    after = bb.trainable_state()
    assert all(torch.equal(before[k], kept[k]) for k in kept)  # the snapshot did not move
    assert any(not torch.equal(after[k], kept[k]) for k in kept)  # the step changed the policy
    assert not torch.allclose(predict(), base_out, atol=1e-6)
    with bb.as_reference():
        torch.testing.assert_close(predict(), ref_out)  # training the policy leaves the reference alone


def test_full_mode_reference_switching(sd_dir, sd, inputs):
    x_t, t, cond = inputs
    with torch.no_grad():
        base_out = sd.predict(x_t, t, cond)
    bb = load_backbone(sd_dir)
    bb.setup_training("full")
    assert {n for n, _ in bb.trainable_named_parameters()} == {n for n, _ in bb.unet.named_parameters()}
    assert not any(p.requires_grad for p in bb.reference_unet.parameters())
    perturbed = _perturbed(bb.trainable_state())
    _check_reference_switching(bb, inputs, base_out)
    # the reference is exactly a UNet holding the perturbed weights
    other = load_backbone(sd_dir)
    other.unet.load_state_dict(perturbed)
    with torch.no_grad(), bb.as_reference():
        torch.testing.assert_close(bb.predict(x_t, t, cond), other.predict(x_t, t, cond))


@pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")  # the second adapter, on purpose
def test_lora_mode_reference_switching(sd_dir, sd, inputs):
    x_t, t, cond = inputs
    with torch.no_grad():
        base_out = sd.predict(x_t, t, cond)
    bb = load_backbone(sd_dir)
    bb.setup_training("lora", lora_rank=4)
    names = [n for n, _ in bb.trainable_named_parameters()]
    assert names and all("lora_" in n and ".default." in n for n in names)
    shapes = {p.shape for n, p in bb.trainable_named_parameters() if "lora_A" in n}
    assert all(s[0] == 4 for s in shapes)  # rank 4
    assert all(torch.all(p == 0) for n, p in bb.trainable_named_parameters() if "lora_B" in n)
    _check_reference_switching(bb, inputs, base_out)

    def grads(tag):
        return {p.requires_grad for n, p in bb.unet.named_parameters() if f".{tag}." in n}

    with bb.as_reference():
        pass
    assert grads(REFERENCE_ADAPTER) == {False}  # the reference adapter stays frozen
    assert grads("default") == {True}  # the policy adapter trains
    assert not any(p.requires_grad for n, p in bb.unet.named_parameters() if "lora_" not in n)


# ---------------------------------------------------------------- sampler and models


def _gen(bb, cond, indices, eta=0.0):
    shape = bb.sample_shape(IMAGE_SIZE)
    return generate(bb, cond, shape=shape, seed=11, step=3, indices=indices, steps=3, guidance=3.0, eta=eta)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_generate_depends_only_on_the_sample_index(sd, eta):
    cond = sd.encode_prompts(PROMPTS)
    both = _gen(sd, cond, [5, 6], eta)
    assert both.shape == (2, 4, LATENT_SIZE, LATENT_SIZE) and torch.isfinite(both).all()
    one = _gen(sd, {k: v[:1] for k, v in cond.items()}, [5], eta)
    two = _gen(sd, {k: v[1:] for k, v in cond.items()}, [6], eta)
    # batch 2 vs batch 1 differs only by float summation order, amplified by DDIM's x0 = (x − √(1−ᾱ)ε̂)/√ᾱ
    # at the first (t = 999) step: UNet outputs agree to ~1e-6 but samples (|x| up to ~50 for an
    # untrained UNet at guidance 3) to ~5e-5.
    torch.testing.assert_close(both, torch.cat([one, two]), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(_gen(sd, cond, [5, 6], eta), both, atol=0, rtol=0)  # deterministic
    # the same prompt at another index is another sample
    other = _gen(sd, {k: v[:1] for k, v in cond.items()}, [7], eta)
    assert not torch.allclose(other, one, atol=1e-3)


def test_eta_changes_the_sample(sd):
    cond = sd.encode_prompts(PROMPTS[:1])
    assert not torch.allclose(_gen(sd, cond, [5], 0.0), _gen(sd, cond, [5], 1.0), atol=1e-3)


def test_load_for_sampling_and_sample_give_rgb_images(sd_dir):
    bb = models.load_for_sampling(str(sd_dir))
    images = models.sample(bb, PROMPTS + ["a dog"], seeds=[1, 2, 3], resolution=IMAGE_SIZE, steps=2, guidance=3.0,
                           batch_size=2)
    assert len(images) == 3
    assert all(isinstance(im, Image.Image) and im.size == (IMAGE_SIZE, IMAGE_SIZE) and im.mode == "RGB"
               for im in images)
    # batch size does not change the pictures
    again = models.sample(bb, PROMPTS + ["a dog"], seeds=[1, 2, 3], resolution=IMAGE_SIZE, steps=2, guidance=3.0,
                          batch_size=3)
    assert [im.tobytes() for im in again] == [im.tobytes() for im in images]
    sheet = models.grid(images, columns=2)
    assert sheet.size == (2 * IMAGE_SIZE, 2 * IMAGE_SIZE)
