"""Every method end to end on the tiny embedded model, and the loop's invariants."""

import json
import shutil
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

import seppo.train
from seppo import paths
from seppo.train import train

TIME_FIELDS = ("time_generate", "time_rest")


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def unet_weights(folder):
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


@pytest.mark.parametrize("method", ["seppo", "sft", "dpo", "spin", "ditto"])
def test_method_end_to_end(method, tiny_config, tmp_path):
    from diffusers import UNet2DConditionModel

    cfg = tiny_config(tmp_path / method, f"method={method}")
    run_dir = train(cfg)
    metrics = rows(run_dir)
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]  # K·U = 2·2 updates
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in metrics)
    assert (run_dir / "config.yaml").exists() and (run_dir / "summary.json").exists()
    assert sorted(p.name for p in (run_dir / "pool").iterdir()) == [f"theta-{j}.safetensors" for j in range(3)]
    # The export loads with plain diffusers, and the weights moved away from the base.
    unet = UNet2DConditionModel.from_pretrained(run_dir / "final" / "unet")
    assert unet.config.cross_attention_dim == 32
    base = load_file(str(run_dir / "pool" / "theta-0.safetensors"))
    final = unet_weights(run_dir / "final")
    assert any(not torch.equal(base[k], final[k]) for k in base)
    # RUN/config.yaml records what ran (seppo.methods): a field the method lacks is null.
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    ran = {"seppo": ("sign", "uniform"), "sft": (None, None), "dpo": (None, "initial"), "spin": ("none", "latest"),
           "ditto": ("none", "initial")}[method]
    assert (saved["flipper"], saved["reference"]) == ran
    if method == "sft":
        assert "flip_rate" not in metrics[0] and "implicit_acc" not in metrics[0]
        assert saved["redraw"] is None and {r["reference"] for r in metrics} == {None}
    elif method == "dpo":
        assert "implicit_acc" in metrics[0] and {r["reference"] for r in metrics} == {0}
    else:
        assert all(0 <= r["flip_rate"] <= 1 for r in metrics)
    if method == "spin":  # latest: iteration 2 uses θ_1
        assert [r["reference"] for r in metrics] == [0, 0, 1, 1]
    if method == "ditto":  # initial: always θ_0
        assert [r["reference"] for r in metrics] == [0, 0, 0, 0]


def test_snapshots_are_immutable_copies(tiny_config, tmp_path):
    """θ_0 in the pool still equals the base model after the policy trained."""
    cfg = tiny_config(tmp_path / "r")
    run_dir = train(cfg)
    base = unet_weights(paths.model_folder(cfg))
    theta0 = load_file(str(run_dir / "pool" / "theta-0.safetensors"))
    assert theta0.keys() == base.keys()
    assert all(torch.equal(theta0[k], base[k]) for k in base)
    theta2 = load_file(str(run_dir / "pool" / "theta-2.safetensors"))
    final = unet_weights(run_dir / "final")
    assert all(torch.equal(theta2[k], final[k]) for k in final)  # θ_K is the final model


def test_accumulation_equals_a_bigger_batch(tiny_config, tmp_path):
    big = train(tiny_config(tmp_path / "big", "train.batch_size=4", "train.grad_accum=1"))
    acc = train(tiny_config(tmp_path / "acc", "train.batch_size=2", "train.grad_accum=2"))
    for a, b in zip(rows(big), rows(acc)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["flip_rate"] == b["flip_rate"]
    wa, wb = unet_weights(big / "final"), unet_weights(acc / "final")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_resume_continues_exactly(tiny_config, tmp_path):
    """A run resumed from its step-2 checkpoint ends bit-identical to an uninterrupted one."""
    overrides = ("train.updates_per_iteration=3", "checkpoints.every=2", "checkpoints.keep_last=5")
    full = train(tiny_config(tmp_path / "full", *overrides))
    # Simulate a run killed after update 4: its checkpoints up to step 4, its metric rows up to 5.
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    shutil.rmtree(killed / "final")
    shutil.rmtree(killed / "checkpoints" / "step-4")
    lines = (killed / "metrics.jsonl").read_text().splitlines()[:5]
    (killed / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    resumed = train(tiny_config(killed, *overrides, "resume=true"))

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in rs]

    assert strip(rows(resumed)) == strip(rows(full))
    wa, wb = unet_weights(full / "final"), unet_weights(resumed / "final")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("method", ["seppo", "dpo"])
def test_two_identical_runs_give_identical_weights(method, tiny_config, tmp_path):
    """Reproducibility on one machine: the same config twice, bit-identical weights and logs
    (SePPO samples its reference images; DPO reads pairs)."""

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in rs]

    a = train(tiny_config(tmp_path / "a", f"method={method}"))
    b = train(tiny_config(tmp_path / "b", f"method={method}"))
    wa, wb = unet_weights(a / "final"), unet_weights(b / "final")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert strip(rows(a)) == strip(rows(b))
    # and a different seed moves them: the check can fail
    c = train(tiny_config(tmp_path / "c", f"method={method}", "seed=1"))
    wc = unet_weights(c / "final")
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_the_drawn_reference_is_the_one_that_generates(tiny_config, tmp_path):
    """Generating inside as_reference() with snapshot θ_1 loaded equals generating with a
    policy whose weights are θ_1."""
    from seppo.backbone import load_backbone
    from seppo.sampler import generate

    cfg = tiny_config(tmp_path / "r")
    folder = paths.model_folder(cfg)
    backbone = load_backbone(folder)
    backbone.setup_training("full")
    theta1 = {k: v + 0.05 * torch.randn_like(v) for k, v in backbone.trainable_state().items()}
    backbone.load_reference_state(theta1)
    cond = backbone.encode_prompts(["a handwritten digit 3", "a handwritten digit 5"])
    kw = dict(shape=(1, 16, 16), seed=0, step=0, indices=[0, 1], steps=3, guidance=3.0)
    with backbone.as_reference():
        as_reference = generate(backbone, cond, **kw)
    as_policy = generate(backbone, cond, **kw)
    other = load_backbone(folder)
    other.setup_training("full")
    other.load_trainable_state(theta1)
    with_theta1 = generate(other, cond, **kw)
    assert torch.allclose(as_reference, with_theta1, atol=1e-6)
    assert not torch.allclose(as_reference, as_policy, atol=1e-3)


def test_output_dir_holding_a_run_is_refused(tiny_config, tmp_path):
    from seppo.errors import SeppoError

    train(tiny_config(tmp_path / "r", "method=sft"))
    with pytest.raises(SeppoError, match="already holds a run"):
        train(tiny_config(tmp_path / "r", "method=sft"))
    train(tiny_config(tmp_path / "r", "method=sft", "overwrite=true"))  # allowed


def test_flipper_from_several_draws_runs(tiny_config, tmp_path):
    one = rows(train(tiny_config(tmp_path / "one")))
    three = rows(train(tiny_config(tmp_path / "three", "flipper_draws=3")))
    assert [r["step"] for r in three] == [1, 2, 3, 4]
    assert all(0 <= r["flip_rate"] <= 1 for r in three)
    # Same first draw, same data: only the verdicts (and what follows from them) may differ.
    assert one[0]["policy_err_w"] == three[0]["policy_err_w"]


def test_export_loads_with_plain_diffusers_and_transformers(tiny_config, tmp_path):
    """Every component folder of the final model loads with from_pretrained, in a process that
    never imports seppo."""
    import subprocess
    import sys

    run_dir = train(tiny_config(tmp_path / "r", "method=sft"))
    code = f"""
import sys
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer
final = {str(run_dir / 'final')!r}
unet = UNet2DConditionModel.from_pretrained(final + "/unet")
text = CLIPTextModel.from_pretrained(final + "/text_encoder")
tok = CLIPTokenizer.from_pretrained(final + "/tokenizer")
sched = DDPMScheduler.from_pretrained(final + "/scheduler")
ids = tok(["a handwritten digit 3"], padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
out = unet(__import__("torch").zeros(1, 1, 16, 16), 10, encoder_hidden_states=text(ids)[0]).sample
assert "seppo" not in sys.modules
print("ok", tuple(out.shape), sched.config.num_train_timesteps)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok (1, 1, 16, 16) 1000" in result.stdout


def test_ema_export_holds_the_average_and_resume_keeps_it(tiny_config, tmp_path):
    """With train.ema_decay the export is the EMA (not θ_K, which the pool keeps), and a run
    resumed from its checkpoint ends with the same EMA weights."""
    overrides = ("train.ema_decay=0.5", "train.updates_per_iteration=3", "checkpoints.every=2", "checkpoints.keep_last=5")
    full = train(tiny_config(tmp_path / "full", *overrides))
    final, theta_k = unet_weights(full / "final"), load_file(str(full / "pool" / "theta-2.safetensors"))
    assert any(not torch.equal(final[k], theta_k[k]) for k in theta_k)
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    shutil.rmtree(killed / "final")
    shutil.rmtree(killed / "checkpoints" / "step-4")
    resumed = train(tiny_config(killed, *overrides, "resume=true"))
    again = unet_weights(resumed / "final")
    assert all(torch.equal(final[k], again[k]) for k in final)


# Python reads of a tensor's value: each is a host sync when the tensor lives on a GPU.
CONVERSIONS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


def test_one_host_sync_per_update(tiny_config, tmp_path, monkeypatch):
    """Each update reads the device once: the finite check of loss and gradient norm, fused with
    the metrics on the updates that log (here every second one).

    Counted: every read of a tensor's value (`CONVERSIONS`) made while `one_update` runs, by any
    code but torch's own (AdamW's CPU step counters; on a GPU the fused AdamW has none). On a CPU
    every tensor is a host tensor, so the count is of the reads the code asks for, which is
    what becomes a sync on a GPU. The first update is left out: it builds the DDIM schedule and
    encodes the empty prompt, once per run."""
    calls: list[list[tuple[str, str, int]]] = []
    current: list | None = None

    def counting(name, original):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            if current is not None and "/torch/" not in caller.f_code.co_filename:
                current.append((name, caller.f_code.co_filename.rsplit("/", 1)[-1], caller.f_lineno))
            return original(self, *args, **kwargs)
        return read

    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    one_update = seppo.train.one_update

    def counted(*args, **kwargs):
        nonlocal current
        current = []
        try:
            return one_update(*args, **kwargs)
        finally:
            calls.append(current)
            current = None

    monkeypatch.setattr(seppo.train, "one_update", counted)
    run_dir = train(tiny_config(tmp_path / "r", "train.updates_per_iteration=3", "log.every=2"))
    assert len(calls) == 6
    assert [len(c) for c in calls[1:]] == [1] * 5, calls
    assert {c[0][:2] for c in calls[1:]} == {("tolist", "train.py")}  # the one reduced vector
    assert [r["step"] for r in rows(run_dir)] == [2, 4, 6]
