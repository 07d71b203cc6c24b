"""oneDNN linears for training (referred.model.cpu_linear) compute F.linear and its gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import referred
from referred.model.cpu_linear import onednn_linear, use_onednn_linears
from referred.model.fast import onednn_available

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="torch built without oneDNN")


def _grads(fn, x, w, b):
    x, w, b = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    y = fn(x, w, b)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad, w.grad, b.grad


@needs_onednn
@pytest.mark.parametrize("shape", [(7, 24), (3, 5, 24), (1, 24)])
def test_values_and_gradients_match_a_float64_linear(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w, b = torch.randn(40, 24, generator=g), torch.randn(40, generator=g)
    got = _grads(onednn_linear, x, w, b)
    want = _grads(F.linear, x.double(), w.double(), b.double())
    for a, e in zip(got, want):
        assert a.dtype == torch.float32 and a.shape == e.shape
        torch.testing.assert_close(a.double(), e, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_non_contiguous_inputs_and_weight_views():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 9, 16, generator=g)[:, :3]  # a slice, as the last block's queries
    packed = torch.randn(48, 16, generator=g, requires_grad=True)
    w_q, _ = packed.split([16, 32])
    onednn_linear(x, w_q, None).sum().backward()
    expected = torch.zeros(48, 16)
    expected[:16] = x.reshape(-1, 16).sum(0).expand(16, 16)
    torch.testing.assert_close(packed.grad, expected, rtol=1e-5, atol=1e-5)


def test_other_dtypes_and_autocast_fall_back_to_f_linear():
    x, w = torch.randn(3, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    torch.testing.assert_close(onednn_linear(x, w), F.linear(x, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = onednn_linear(torch.randn(3, 8), torch.randn(5, 8))
    assert y.dtype == torch.bfloat16  # autocast's own linear ran


@needs_onednn
def test_a_training_step_of_a_condvit_is_unchanged():
    """Same loss and gradients with oneDNN linears as with F.linear; names unchanged."""
    torch.manual_seed(0)
    arch = dict(input_resolution=32, patch_size=8, width=64, layers=2, heads=2, output_dim=16)
    from referred.model.config import ModelConfig

    model = referred.CondViT(ModelConfig(**arch, categories=("a", "b")))
    names = list(model.state_dict())
    x, c = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])

    def step():
        model.zero_grad()
        loss = (model(x, c) - model(x).flip(0)).square().mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads

    plain_loss, plain = step()
    assert use_onednn_linears(model, enabled=True) is True
    assert model.transformer.resblocks[0].mlp.c_fc.linear_fn is onednn_linear
    fast_loss, fast = step()
    torch.testing.assert_close(fast_loss, plain_loss, rtol=1e-5, atol=1e-6)
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)
    assert list(model.state_dict()) == names
    assert use_onednn_linears(model, enabled=False) is False
    assert model.transformer.resblocks[0].attn.linear_fn is F.linear


@needs_onednn
@pytest.mark.parametrize("choice, expected", [("onednn", True), ("torch", False)])
def test_by_default_the_linears_follow_the_cpus_faster_gemm(monkeypatch, choice, expected):
    from referred.model import cpu
    from referred.model.config import ModelConfig

    monkeypatch.setenv(cpu.ENV_GEMM, choice)
    cpu.gemm_decision.cache_clear()
    try:
        model = referred.CondViT(
            ModelConfig(
                input_resolution=16, patch_size=8, width=32, layers=1, heads=2, output_dim=8
            )
        )
        assert use_onednn_linears(model) is expected
        fn = model.transformer.resblocks[0].mlp.c_fc.linear_fn
        assert fn is (onednn_linear if expected else F.linear)
    finally:
        cpu.gemm_decision.cache_clear()
