"""The training objectives: pure functions of per-sample denoising errors.

Every loss takes the same arguments, so the loop calls `LOSSES[method.loss](...)` and never
names a method (the method table is `seppo.methods.METHODS`):

    loss, metrics = LOSSES[name](policy_err, ref_err, beta=β, flipper=f, anchor_gap=d)

Symbols (DESIGN.md §1); errors of a batch are stacked on dim 0, winners first:

| code             | shape      | paper                                                       |
|------------------|------------|-------------------------------------------------------------|
| `policy_err`     | (2B,)      | e_θ(x^w) then e_θ(x^other); SFT: (B,), e_θ(x^w) only          |
| `ref_err`        | (2B,)      | e_ref(x^w) then e_ref(x^other); SFT: None                    |
| `policy_err_w`   | (B,)       | e_θ(x^w), policy error on the winner                         |
| `ref_err_w`      | (B,)       | e_ref(x^w), reference error on the winner                    |
| `policy_err_ref` | (B,)       | e_θ(x^ref), policy error on the reference sample (SePPO)     |
| `policy_err_l`   | (B,)       | e_θ(x^l), policy error on the loser (DPO)                    |
| `beta`           |            | β; ½β absorbs T·ω(λ_t)                                      |
| `s`              | (B,)       | the anchor-based flipper's sign                              |
| `anchor_gap`     | (B,)       | e_ref(x^w) − e_θ(x^w) averaged over several (t, ε) draws, or None |
| `logit`          | (B,)       | z = −½·β·(Δ_w − s·Δ_r)                                       |

A winner and its reference sample (or loser) were noised with the same t and ε. A loss
ignores the arguments its method does not have (SFT: no reference, no β; DPO: no flipper).
Each returns `(loss, metrics)`: `loss` is the scalar batch mean; `metrics` is a dict of
detached 0-dim tensors for logging, read by the loop once per logged update (one host sync),
never here. Nothing here sees a model, a config or an accelerator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLIPPERS = ("sign", "indicator", "none")

Metrics = dict[str, torch.Tensor]


def sft(policy_err: torch.Tensor, ref_err: torch.Tensor | None = None, *, beta: float = 0.0,
        flipper: str | None = None, anchor_gap: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
    """Supervised fine-tuning on winners: the plain denoising loss mean e_θ(x^w)."""
    loss = policy_err.mean()
    return loss, {"loss": loss.detach(), "policy_err_w": loss.detach()}


def dpo(policy_err: torch.Tensor, ref_err: torch.Tensor, *, beta: float, flipper: str | None = None,
        anchor_gap: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
    """Diffusion-DPO: mean of −log σ(−½β[(e_θ(x^w) − e_ref(x^w)) − (e_θ(x^l) − e_ref(x^l))])."""
    return _preference_loss(policy_err, ref_err, beta, s=None, other="l")


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


def seppo(policy_err: torch.Tensor, ref_err: torch.Tensor, *, beta: float, flipper: str = "sign",
          anchor_gap: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
    """SePPO: mean of −log σ(−½β[(e_θ(x^w) − e_ref(x^w)) − s·(e_θ(x^ref) − e_ref(x^ref))]).

    `metrics["flip_rate"]` is the share of reference samples the flipper treats as winners:
    s = −1 for `sign`, s = 0 (term dropped) for `indicator`, never for `none`.
    `anchor_gap`, when given, decides s instead of this draw's e_ref(x^w) − e_θ(x^w): the
    mean gap over several (t, ε) draws (`flipper_draws`; the paper uses one).
    """
    policy_err_w, ref_err_w = policy_err.chunk(2)[0], ref_err.chunk(2)[0]  # (B,) each: the winners
    gap = ref_err_w - policy_err_w if anchor_gap is None else anchor_gap
    s = sign_of_gap(gap, flipper)
    loss, metrics = _preference_loss(policy_err, ref_err, beta, s=s, other="ref")
    flipped = (s < 0) if flipper == "sign" else (s == 0)
    metrics["flip_rate"] = flipped.float().mean()
    return loss, metrics


def _preference_loss(policy_err: torch.Tensor, ref_err: torch.Tensor, beta: float, s: torch.Tensor | None,
                     other: str) -> tuple[torch.Tensor, Metrics]:
    policy_err_w, policy_err_other = policy_err.chunk(2)  # (B,), (B,): winners, then the other half
    ref_err_w, ref_err_other = ref_err.chunk(2)  # (B,), (B,)
    # 1. Δ_w and Δ_other: how much better (negative) or worse the policy denoises than the reference.
    delta_w = policy_err_w - ref_err_w
    delta_other = policy_err_other - ref_err_other
    # 2. z = −½β(Δ_w − s·Δ_other); DPO is s = 1.
    signed_other = delta_other if s is None else s * delta_other
    logit = -0.5 * beta * (delta_w - signed_other)
    # 3. ℓ = −log σ(z), averaged over samples (mean of logsigmoid, not logsigmoid of a mean).
    loss = -F.logsigmoid(logit).mean()
    metrics = {
        "loss": loss,
        "implicit_acc": (logit > 0).float().mean(),
        "logit": logit.mean(),
        "policy_err_w": policy_err_w.mean(),
        "ref_err_w": ref_err_w.mean(),
        f"policy_err_{other}": policy_err_other.mean(),
        f"ref_err_{other}": ref_err_other.mean(),
    }
    return loss, {k: v.detach() for k, v in metrics.items()}


# Loss by name: the method table (seppo.methods) names one for each method.
LOSSES = {"sft": sft, "dpo": dpo, "seppo": seppo}
