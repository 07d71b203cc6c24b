"""The contrastive loss: a hand-computed case, an oracle, the per-process decomposition, and
that training on it moves a real model (loss falls, the condition matters)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from referred.model import create_model
from referred.model.config import make_config
from referred.train.loss import clamp_logit_scale_, info_nce, logit_temperature
from tests.train.conftest import MICRO_ARCH


def test_hand_computed_two_pairs():
    # q0 = t0 = e0, q1 = t1 = e1 (orthogonal), scale e^0 = 1: logits [[1, 0], [0, 1]].
    e = torch.eye(2)
    loss = info_nce(e, e, torch.tensor(0.0))
    expected = -math.log(math.e / (math.e + 1))  # each row: softmax of (1, 0) at the diagonal
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _oracle(q, t, scale):
    """Straightforward symmetric InfoNCE with loops."""
    n = q.shape[0]
    total = 0.0
    for i in range(n):
        row = [scale * float(q[i] @ t[j]) for j in range(n)]
        col = [scale * float(t[i] @ q[j]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(v) for v in row))
        total += -col[i] + math.log(sum(math.exp(v) for v in col))
    return total / (2 * n)


def test_matches_a_loop_oracle():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    t = F.normalize(torch.randn(6, 5, generator=g), dim=-1)
    loss = info_nce(q, t, torch.tensor(math.log(10.0)))
    assert loss.item() == pytest.approx(_oracle(q, t, 10.0), rel=1e-5)


def test_per_process_losses_average_to_the_full_batch_loss():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(8, 4, generator=g), dim=-1)
    t = F.normalize(torch.randn(8, 4, generator=g), dim=-1)
    scale = torch.tensor(2.0)
    full = info_nce(q, t, scale)
    parts = [
        info_nce(q[r * 4 : r * 4 + 4], t[r * 4 : r * 4 + 4], scale, q, t, r * 4) for r in (0, 1)
    ]
    assert (sum(parts) / 2).item() == pytest.approx(full.item(), rel=1e-6)


def test_logit_scale_is_clamped_to_0_ln100():
    assert logit_temperature(torch.tensor(9.0)).item() == pytest.approx(100.0, rel=1e-5)
    assert logit_temperature(torch.tensor(-3.0)).item() == pytest.approx(1.0)
    p = torch.nn.Parameter(torch.tensor(7.0))
    clamp_logit_scale_(p)
    assert p.item() == pytest.approx(math.log(100.0))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="must both be"):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4), torch.tensor(1.0))


def test_loss_falls_on_a_tiny_batch_and_the_condition_changes_the_query():
    torch.manual_seed(0)
    model = create_model(make_config(MICRO_ARCH, "category"), seed=0).train()
    scenes, products = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    cats = torch.arange(8) % 10
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        q = F.normalize(model(scenes, cats), dim=-1)
        t = F.normalize(model(products), dim=-1)
        loss = info_nce(q, t, model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        a = model(scenes[:1], torch.tensor([0]))
        b = model(scenes[:1], torch.tensor([5]))
    assert not torch.allclose(a, b, atol=1e-4)
