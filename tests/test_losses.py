"""Each loss against numbers worked out by hand.

Hand arithmetic used below (natural logs):
  −log σ(z) = log(1 + e^{−z});  log(1+e^{-1}) = 0.31326169,  log(1+e^{1}) = 1.31326169,
  log(2) = 0.69314718,  log(1+e^{-2}) = 0.12692801,  log(1+e^{2}) = 2.12692801.
"""

import math

import pytest
import torch

from seppo import losses


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def stacked(w, other):
    """Errors as the loop passes them: winners first, then the other half, on dim 0 (2B,)."""
    return torch.cat([w, other])


def value(metric) -> float:
    """Metrics are detached 0-dim tensors (the loop reads them once per logged update)."""
    assert isinstance(metric, torch.Tensor) and metric.dim() == 0 and not metric.requires_grad
    return metric.item()


def test_sft_is_mean_error():
    loss, m = losses.sft(t(0.1, 0.3), None, beta=20.0, flipper=None)
    assert loss.item() == pytest.approx(0.2)
    assert value(m["loss"]) == pytest.approx(0.2)


def test_dpo_by_hand():
    # Sample 1: Δw = 0.3 − 0.4 = −0.1, Δl = 0.5 − 0.5 = 0  → z = −½·20·(−0.1 − 0) = 1
    # Sample 2: Δw = 0.2 − 0.1 = 0.1,  Δl = 0.1 − 0.2 = −0.1 → z = −10·(0.2) = −2
    loss, m = losses.dpo(stacked(t(0.3, 0.2), t(0.5, 0.1)), stacked(t(0.4, 0.1), t(0.5, 0.2)), beta=20.0, flipper=None)
    expected = (0.31326169 + 2.12692801) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    assert value(m["implicit_acc"]) == pytest.approx(0.5)
    assert value(m["logit"]) == pytest.approx((1 - 2) / 2)
    assert "policy_err_l" in m and "flip_rate" not in m


def test_seppo_sign_flipper_by_hand():
    # β = 20, so z = −10·(Δw − s·Δr).
    # Sample 1: pw=0.3 rw=0.4 → d = rw−pw = 0.1 > 0 → s=+1; pr=0.5 rr=0.4 → Δr=0.1; Δw=−0.1
    #           z = −10·(−0.1 − 0.1) = 2 → ℓ = log(1+e^{-2})
    # Sample 2: pw=0.5 rw=0.4 → d = −0.1 → s=−1; pr=0.2 rr=0.3 → Δr=−0.1; Δw=0.1
    #           z = −10·(0.1 − (−1)(−0.1)) = −10·0 = 0 → ℓ = log 2
    # Sample 3: pw=rw=0.2 → d = 0 → s = sgn(0) = 0; Δw=0 → z = 0 → ℓ = log 2
    pw, pr, rw, rr = t(0.3, 0.5, 0.2), t(0.5, 0.2, 0.7), t(0.4, 0.4, 0.2), t(0.4, 0.3, 0.1)
    loss, m = losses.seppo(stacked(pw, pr), stacked(rw, rr), beta=20.0, flipper="sign")
    expected = (0.12692801 + math.log(2) + math.log(2)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    assert value(m["flip_rate"]) == pytest.approx(1 / 3)  # only sample 2 has s = −1
    assert value(m["implicit_acc"]) == pytest.approx(1 / 3)  # only sample 1 has z > 0
    assert value(m["policy_err_ref"]) == pytest.approx((0.5 + 0.2 + 0.7) / 3)  # the second half is x^ref


def test_seppo_indicator_and_none_by_hand():
    pw, pr, rw, rr = t(0.3, 0.5), t(0.5, 0.2), t(0.4, 0.4), t(0.4, 0.3)
    # indicator: s = (1, 0). Sample 1 as above: z = 2. Sample 2: z = −10·(0.1 − 0) = −1.
    loss, m = losses.seppo(stacked(pw, pr), stacked(rw, rr), beta=20.0, flipper="indicator")
    assert loss.item() == pytest.approx((0.12692801 + 1.31326169) / 2, abs=1e-7)
    assert value(m["flip_rate"]) == pytest.approx(0.5)  # sample 2's term was dropped
    # none: s = (1, 1). Sample 2: z = −10·(0.1 − (−0.1)) = −2.
    loss, m = losses.seppo(stacked(pw, pr), stacked(rw, rr), beta=20.0, flipper="none")
    assert loss.item() == pytest.approx((0.12692801 + 2.12692801) / 2, abs=1e-7)
    assert value(m["flip_rate"]) == 0.0


def test_seppo_with_none_flipper_equals_dpo():
    g = torch.Generator().manual_seed(0)
    pw, pr, rw, rr = (torch.rand(7, generator=g, dtype=torch.float64) for _ in range(4))
    a, _ = losses.seppo(stacked(pw, pr), stacked(rw, rr), beta=300.0, flipper="none")
    b, _ = losses.dpo(stacked(pw, pr), stacked(rw, rr), beta=300.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_no_gradient_flows_through_the_flipper():
    # With s detached, ∂ℓ/∂pw for one sample is −σ(−z)·∂z/∂pw = −σ(−z)·(−½β) = ½β·σ(−z).
    # If s carried gradient, sign() has zero gradient anyway, but indicator via a soft path
    # would not; check the exact value for both flippers.
    for flipper in ("sign", "indicator"):
        pw = t(0.3).requires_grad_()
        loss, _ = losses.seppo(stacked(pw, t(0.5)), stacked(t(0.4), t(0.4)), beta=20.0, flipper=flipper)
        loss.backward()
        z = 2.0  # from the hand computation above (s = +1 for both flippers here)
        assert pw.grad.item() == pytest.approx(10.0 * (1 / (1 + math.exp(z))), abs=1e-9)


def test_gradient_pushes_winner_error_down_and_reference_error_up_when_s_positive():
    pw, pr = t(0.3).requires_grad_(), t(0.5).requires_grad_()
    loss, _ = losses.seppo(stacked(pw, pr), stacked(t(0.4), t(0.4)), beta=20.0, flipper="sign")
    loss.backward()
    assert pw.grad.item() > 0  # descent lowers e_θ(x^w)
    assert pr.grad.item() < 0  # descent raises e_θ(x^ref): pushed away
    pw, pr = t(0.5).requires_grad_(), t(0.2).requires_grad_()
    loss, _ = losses.seppo(stacked(pw, pr), stacked(t(0.4), t(0.3)), beta=20.0, flipper="sign")  # s = −1
    loss.backward()
    assert pr.grad.item() > 0  # s = −1: the reference sample is learned from


def test_unknown_flipper_raises():
    with pytest.raises(ValueError, match="flipper"):
        losses.seppo(t(0.1, 0.1), t(0.1, 0.1), beta=1.0, flipper="coin")


def test_one_method_table_names_every_loss_and_flipper():
    """Each method names its loss in LOSSES; a method's fixed flipper is one the losses implement."""
    from seppo.methods import FLIPPERS, METHODS

    assert set(losses.LOSSES) == {"sft", "dpo", "seppo"}
    assert set(METHODS) == {"sft", "dpo", "seppo", "spin", "ditto"}
    assert all(m.loss in losses.LOSSES for m in METHODS.values())
    assert FLIPPERS == losses.FLIPPERS
    assert METHODS["spin"].loss == METHODS["ditto"].loss == "seppo"  # presets of SePPO's loss


def test_every_loss_takes_one_calling_convention():
    """The loop calls every loss the same way; each ignores what its method does not have."""
    p, r = t(0.3, 0.5), t(0.4, 0.4)
    for name, fn in losses.LOSSES.items():
        loss, metrics = fn(p, None if name == "sft" else r, beta=20.0, flipper=None if name != "seppo" else "sign",
                           anchor_gap=None)
        assert loss.dim() == 0 and value(metrics["loss"]) == pytest.approx(loss.item())


def test_anchor_gap_from_several_draws_decides_s():
    # This draw alone gives d = 0.4 − 0.3 > 0 (s = +1), but the mean gap over draws is −0.2,
    # so s = −1: Δw = −0.1, Δr = 0.5 − 0.4 = 0.1, z = −10·(−0.1 − (−1)(0.1)) = 0 → ℓ = log 2.
    p, r = stacked(t(0.3), t(0.5)), stacked(t(0.4), t(0.4))
    loss, m = losses.seppo(p, r, beta=20.0, flipper="sign", anchor_gap=t(-0.2))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-9)
    assert value(m["flip_rate"]) == 1.0
    loss, _ = losses.seppo(p, r, beta=20.0, flipper="sign", anchor_gap=t(0.1))
    assert loss.item() == pytest.approx(0.12692801, abs=1e-7)  # s = +1 as in the single-draw case
