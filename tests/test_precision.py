"""fp16: a skipped non-finite update backs the loss scale off as plain accelerate does
(issue 14, item 2), and the next update runs (no "unscale_() has already been called").

accelerate gives no GradScaler on the CPU (`Accelerator(mixed_precision="fp16", cpu=True)` has
`scaler=None` and no autocast), so the test hands a real `torch.amp.GradScaler("cpu")` to a CPU
accelerator before `prepare`, as accelerate does on a GPU, and drives the loop's own
`apply_gradients` with it. The reference is plain accelerate: backward, clip, `optimizer.step()`.
"""

from __future__ import annotations

import math

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from seppo.train import apply_gradients

INIT_SCALE = 2.0**10
FACTORS = [math.inf, 1.0, 1.0]  # the first update overflows, the next two are finite


@pytest.fixture
def fp16_accelerator():
    AcceleratorState._reset_state(True)
    accelerator = Accelerator(mixed_precision="fp16", cpu=True)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE, growth_interval=1)
    accelerator.native_amp = True
    yield accelerator
    AcceleratorState._reset_state(True)


def _model_and_optimizer(accelerator):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return accelerator.prepare(model, optimizer)


def _loss(model, factor):
    x = torch.arange(8.0).view(2, 4) / 8
    return (model(x) * factor).pow(2).mean()


def test_a_skipped_update_backs_off_the_loss_scale_like_plain_accelerate(fp16_accelerator):
    a = fp16_accelerator
    model, optimizer = _model_and_optimizer(a)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    params = list(model.parameters())
    seen = []
    for factor in FACTORS:
        loss = _loss(model, factor)
        a.backward(loss)
        finite, _ = apply_gradients(a, 1.0, {"loss": loss.detach().double()}, params, optimizer, scheduler, None,
                                    logged=False)
        seen.append((finite, a.scaler.get_scale()))
    ours = [p.detach().clone() for p in params]

    # plain accelerate, same model, same data
    AcceleratorState._reset_state(True)
    plain = Accelerator(mixed_precision="fp16", cpu=True)
    plain.scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE, growth_interval=1)
    plain.native_amp = True
    model, optimizer = _model_and_optimizer(plain)
    expected = []
    for factor in FACTORS:
        plain.backward(_loss(model, factor))
        plain.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        expected.append(plain.scaler.get_scale())

    assert [s for _, s in seen] == expected == [INIT_SCALE / 2, INIT_SCALE, INIT_SCALE * 2]
    assert [f for f, _ in seen] == [False, True, True]
    assert all(torch.equal(p, q) for p, q in zip(ours, model.parameters()))
