"""Reference samples shared by content between runs (seppo.shared_samples): the same weights
as without sharing, and the samples of θ_0 drawn once per seed."""

import pytest
import torch
from safetensors.torch import load_file

import seppo.update
from seppo.shared_samples import sample_key, weights_digest
from seppo.train import train


def final_weights(run_dir):
    return load_file(str(run_dir / "final" / "unet" / "diffusion_pytorch_model.safetensors"))


def counting_generate(monkeypatch):
    calls = []
    real = seppo.update.generate

    def counted(*args, **kwargs):
        calls.append(kwargs["step"])
        return real(*args, **kwargs)

    monkeypatch.setattr(seppo.update, "generate", counted)
    return calls


def test_a_second_run_reuses_the_first_iterations_samples_and_ends_bit_identical(tiny_config, tmp_path, monkeypatch):
    share = tmp_path / "samples"
    # K=2 × U=2 updates, reference latest: θ_0 in updates 0-1, the run's own θ_1 in updates 2-3.
    common = ("reference=latest", f"sampler.share_dir={share}")
    train(tiny_config(tmp_path / "a", *common, "train.lr=1e-4"))
    assert len(list(share.glob("*.safetensors"))) == 4  # every micro-batch's samples, one file each

    calls = counting_generate(monkeypatch)
    shared = train(tiny_config(tmp_path / "b", *common, "train.lr=3e-4"))
    assert calls == [2, 3]  # θ_0's samples came from run a; θ_1 differs with the learning rate
    assert len(list(share.glob("*.safetensors"))) == 6

    calls.clear()
    plain = train(tiny_config(tmp_path / "b-plain", "reference=latest", "train.lr=3e-4"))
    assert calls == [0, 1, 2, 3]
    wa, wb = final_weights(shared), final_weights(plain)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    calls.clear()  # another seed draws other noise: nothing to reuse
    train(tiny_config(tmp_path / "c", *common, "train.lr=1e-4", "seed=7"))
    assert calls == [0, 1, 2, 3]


def test_the_key_changes_with_every_input(tiny_config, tmp_path):
    cfg = tiny_config(tmp_path / "r")
    cond = {"encoder_hidden_states": torch.zeros(2, 3, 4)}
    weights = weights_digest({"w": torch.zeros(3)})
    base = dict(shape=(1, 4, 4), step=0, indices=[0, 1], device=torch.device("cpu"))
    key = sample_key(cfg, weights, cond, **base)
    assert key == sample_key(cfg, weights, {k: v.clone() for k, v in cond.items()}, **base)
    other_cond = {"encoder_hidden_states": torch.zeros(2, 3, 4).index_fill(2, torch.tensor([1]), 1e-7)}
    other_cfg = tiny_config(tmp_path / "r", "sampler.guidance=2.0")
    changed = [sample_key(cfg, weights_digest({"w": torch.tensor([0.0, 0.0, 1e-9])}), cond, **base),
               sample_key(cfg, weights, other_cond, **base),
               sample_key(other_cfg, weights, cond, **base),
               sample_key(cfg, weights, cond, **{**base, "step": 1}),
               sample_key(cfg, weights, cond, **{**base, "indices": [1, 0]})]
    assert len({key, *changed}) == 6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_weights_digest_reads_every_byte(dtype):
    a = {"x": torch.zeros(4, dtype=dtype), "y": torch.ones(2, dtype=dtype)}
    assert weights_digest(a) == weights_digest({"y": a["y"].clone(), "x": a["x"].clone()})  # order-free
    assert weights_digest(a) != weights_digest({**a, "y": torch.tensor([1.0, 2.0], dtype=dtype)})
    assert weights_digest(a) != weights_digest({"x": a["x"], "z": a["y"]})  # names count
