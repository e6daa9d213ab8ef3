"""The training objectives: pure functions of per-sample denoising errors.

Symbols (DESIGN.md §1):

| code             | paper                         |
|------------------|-------------------------------|
| `policy_err_w`   | e_θ(x^w), policy error on the winner            |
| `ref_err_w`      | e_ref(x^w), reference error on the winner       |
| `policy_err_ref` | e_θ(x^ref), policy error on the reference sample |
| `ref_err_ref`    | e_ref(x^ref), reference error on the reference sample |
| `policy_err_l`   | e_θ(x^l), policy error on the loser (DPO)       |
| `beta`           | β; ½β absorbs T·ω(λ_t)                          |
| `s`              | the anchor-based flipper's sign                 |
| `logit`          | z = −½·β·(Δ_w − s·Δ_r)                          |

Every input is a 1-D tensor of per-sample errors (one per prompt), and each of winner and
reference sample was noised with the same t and ε. Each function returns `(loss, metrics)`:
`loss` is the scalar batch mean, `metrics` a dict of floats for logging. Nothing here sees
a model, a config or an accelerator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLIPPERS = ("sign", "indicator", "none")


def sft(policy_err_w: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Supervised fine-tuning on winners: the plain denoising loss mean e_θ(x^w)."""
    loss = policy_err_w.mean()
    return loss, {"loss": loss.item(), "policy_err_w": loss.item()}


def dpo(
    policy_err_w: torch.Tensor,
    policy_err_l: torch.Tensor,
    ref_err_w: torch.Tensor,
    ref_err_l: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Diffusion-DPO: mean of −log σ(−½β[(e_θ(x^w) − e_ref(x^w)) − (e_θ(x^l) − e_ref(x^l))])."""
    return _preference_loss(policy_err_w, policy_err_l, ref_err_w, ref_err_l, beta, s=None, other="l")


def flipper_sign(policy_err_w: torch.Tensor, ref_err_w: torch.Tensor, flipper: str) -> torch.Tensor:
    """The anchor-based adaptive flipper's s, from the winner (the anchor); carries no gradient.

    1. d = e_ref(x^w) − e_θ(x^w): positive when the policy already fits the anchor better.
    2. `sign`:      s = sgn(d) ∈ {−1, 0, +1}, with sgn(0) = 0.
       `indicator`: s = 1[d > 0] ∈ {0, 1}: the reference term is kept or dropped.
       `none`:      s = 1: always push the reference sample away (SPIN / DITTO style).
    """
    return sign_of_gap(ref_err_w - policy_err_w, flipper)


def sign_of_gap(d: torch.Tensor, flipper: str) -> torch.Tensor:
    """s from the anchor gap d = e_ref(x^w) − e_θ(x^w) (one draw, or a mean over draws)."""
    d = d.detach()
    if flipper == "sign":
        return torch.sign(d)
    if flipper == "indicator":
        return (d > 0).to(d.dtype)
    if flipper == "none":
        return torch.ones_like(d)
    raise ValueError(f"unknown flipper {flipper!r}; expected one of {FLIPPERS}")


def seppo(
    policy_err_w: torch.Tensor,
    policy_err_ref: torch.Tensor,
    ref_err_w: torch.Tensor,
    ref_err_ref: torch.Tensor,
    beta: float,
    flipper: str = "sign",
    anchor_gap: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SePPO: mean of −log σ(−½β[(e_θ(x^w) − e_ref(x^w)) − s·(e_θ(x^ref) − e_ref(x^ref))]).

    `metrics["flip_rate"]` is the share of reference samples the flipper treats as winners:
    s = −1 for `sign`, s = 0 (term dropped) for `indicator`, never for `none`.
    `anchor_gap`, when given, decides s instead of this draw's e_ref(x^w) − e_θ(x^w): the
    mean gap over several (t, ε) draws (`flipper_draws`; the paper uses one).
    """
    gap = ref_err_w - policy_err_w if anchor_gap is None else anchor_gap
    s = sign_of_gap(gap, flipper)
    loss, metrics = _preference_loss(policy_err_w, policy_err_ref, ref_err_w, ref_err_ref, beta, s=s, other="ref")
    flipped = (s < 0) if flipper == "sign" else (s == 0)
    metrics["flip_rate"] = flipped.float().mean().item()
    return loss, metrics


def _preference_loss(
    policy_err_w: torch.Tensor,
    policy_err_other: torch.Tensor,
    ref_err_w: torch.Tensor,
    ref_err_other: torch.Tensor,
    beta: float,
    s: torch.Tensor | None,
    other: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    # 1. Δ_w and Δ_other: how much better (negative) or worse the policy denoises than the reference.
    delta_w = policy_err_w - ref_err_w
    delta_other = policy_err_other - ref_err_other
    # 2. z = −½β(Δ_w − s·Δ_other); DPO is s = 1.
    signed_other = delta_other if s is None else s * delta_other
    logit = -0.5 * beta * (delta_w - signed_other)
    # 3. ℓ = −log σ(z), averaged over samples (mean of logsigmoid, not logsigmoid of a mean).
    loss = -F.logsigmoid(logit).mean()
    metrics = {
        "loss": loss.item(),
        "implicit_acc": (logit > 0).float().mean().item(),
        "logit": logit.mean().item(),
        "policy_err_w": policy_err_w.mean().item(),
        "ref_err_w": ref_err_w.mean().item(),
        f"policy_err_{other}": policy_err_other.mean().item(),
        f"ref_err_{other}": ref_err_other.mean().item(),
    }
    return loss, metrics


# The method is chosen through this one mapping, never an if/elif chain in the loop.
# `spin` and `ditto` are presets of `seppo` (config.py fixes their reference and flipper).
LOSSES = {"sft": sft, "dpo": dpo, "seppo": seppo, "spin": seppo, "ditto": seppo}
