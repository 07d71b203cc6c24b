"""The opt-in inference path (referred.model.fast) computes what CondViT.forward computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import referred
from referred.model import cpu
from referred.model.config import ModelConfig
from referred.model.fast import (
    FastCondViT,
    inference_model,
    onednn_available,
    optimize_for_inference,
)

SMALL = dict(input_resolution=32, patch_size=8, width=128, layers=3, heads=2, output_dim=48)
FP32_RTOL = 1e-4
BF16_RTOL = 2e-2  # bfloat16 matmuls (8-bit mantissa): ~3e-3 measured on B/16 and on this model
BACKENDS = [
    "torch",
    pytest.param("onednn", marks=pytest.mark.skipif(not onednn_available(), reason="no oneDNN")),
]


def model_with_random_state(seed: int = 0, **cond) -> referred.CondViT:
    """A small CondViT whose layer norms and biases are random too (not 1 and 0)."""
    model = referred.create_model(ModelConfig(**SMALL, **cond), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif ".ln_" in name or name.startswith("ln_"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest per-row relative L2 error of a against b."""
    a, b = a.double(), b.double()
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def images(n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("micro_batch", [None, 2])
def test_fp32_equals_the_plain_model(backend, micro_batch):
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    fast = optimize_for_inference(model, backend=backend, micro_batch=micro_batch)
    assert fast.backend == backend
    x, c = images(), torch.tensor([0, 3, 9, 3, 1])
    with torch.no_grad():
        expected, expected_plain = model(x, c), model(x)
    out = fast(x, c)
    assert out.shape == (5, 48) and out.dtype == torch.float32
    assert rel_err(out, expected) < FP32_RTOL
    assert rel_err(fast(x), expected_plain) < FP32_RTOL  # unconditioned: the plain ViT
    assert rel_err(fast(x[:1], c[:1]), expected[:1]) < FP32_RTOL  # batch 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_conditioning(backend):
    model = model_with_random_state(seed=2, cond_dim=64)  # a learned c_proj: 64 → 128
    vec = torch.randn(4, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(images(4), vec)
    fast = optimize_for_inference(model, backend=backend, micro_batch=3)
    assert rel_err(fast(images(4), vec), expected) < FP32_RTOL


@pytest.mark.skipif(cpu.bf16_problem() is not None, reason=str(cpu.bf16_problem()))
@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_is_close(backend):
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    x, c = images(), torch.tensor([0, 1, 2, 3, 4])
    with torch.no_grad():
        expected = model(x, c)
    fast = optimize_for_inference(model, dtype=torch.bfloat16, backend=backend)
    out = fast(x, c)
    assert out.dtype == torch.float32
    assert 1e-6 < rel_err(out, expected) < BF16_RTOL  # really bf16, and still close


def test_bf16_is_refused_with_the_reason_where_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setenv(cpu.ENV_ISA, "avx2")  # behave as an AVX2-only host, whatever this one is
    cpu.cpu_info.cache_clear()
    try:
        model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
        with pytest.raises(ValueError, match=r"no native bfloat16.*use float32"):
            optimize_for_inference(model, dtype=torch.bfloat16)
        assert optimize_for_inference(model).dtype == torch.float32  # float32 still works
    finally:
        monkeypatch.delenv(cpu.ENV_ISA)
        cpu.cpu_info.cache_clear()


@pytest.mark.parametrize("choice", ["torch", pytest.param("onednn", marks=BACKENDS[1].marks)])
def test_auto_backend_is_the_cpus_choice(monkeypatch, choice):
    monkeypatch.setenv(cpu.ENV_GEMM, choice)
    cpu.gemm_decision.cache_clear()
    try:
        model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
        assert optimize_for_inference(model).backend == choice
    finally:
        cpu.gemm_decision.cache_clear()


def test_threads_are_set_per_call_and_restored():
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    before = torch.get_num_threads()
    seen = []
    fast = optimize_for_inference(model, threads=before + 1)
    original = fast._forward
    fast._forward = lambda x, c: (seen.append(torch.get_num_threads()), original(x, c))[1]
    fast(images(2), torch.tensor([1, 2]))
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_snapshot_and_repr():
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    fast = optimize_for_inference(model, backend="torch")
    x, c = images(2), torch.tensor([1, 2])
    before = fast(x, c)
    with torch.no_grad():
        model.transformer.resblocks[0].mlp.c_fc.weight.mul_(2.0)
    torch.testing.assert_close(fast(x, c), before, rtol=0, atol=0)  # weights were copied
    assert "FastCondViT(custom" in repr(fast) and "backend='torch'" in repr(fast)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dtype=torch.float16), "dtype"),
        (dict(threads=0), "threads"),
        (dict(micro_batch=0), "micro_batch"),
        (dict(backend="tvm"), "backend"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    with pytest.raises(ValueError, match=message):
        FastCondViT(model, **kwargs)


def test_input_errors_are_the_models():
    fast = optimize_for_inference(model_with_random_state(categories=referred.LRVSF_CATEGORIES))
    with pytest.raises(ValueError, match="3 conditions for 2 images"):
        fast(images(2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        fast(images(2), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="32x32"):
        fast(torch.zeros(1, 3, 64, 64), torch.tensor([0]))


def test_block_with_fewer_queries_equals_the_full_block():
    """CondViT.forward runs its last block for the class token only; that is the same math."""
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    block = model.transformer.resblocks[-1]
    with torch.no_grad():
        h = model.tokens(images(3), torch.tensor([0, 1, 2]))  # (3, 18, 128)
        full = block(h)
        for q in (1, 5):
            torch.testing.assert_close(block(h, queries=q), full[:, :q], rtol=1e-5, atol=1e-5)
        _, probs = block.attn(block.ln_1(h), need_weights=True, queries=2)
        _, all_probs = block.attn(block.ln_1(h), need_weights=True)
        torch.testing.assert_close(probs, all_probs[:, :2], rtol=1e-5, atol=1e-6)


def test_encode_helpers_match_the_plain_model():
    from PIL import Image

    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    fast = optimize_for_inference(model)
    rng = np.random.default_rng(0)
    pics = [Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)) for _ in range(3)]
    conds = ["Bags", "neck", 2]
    torch.testing.assert_close(
        fast.encode_queries(pics, conds), model.encode_queries(pics, conds), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        fast.encode_targets(pics), model.encode_targets(pics), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="unknown category 'hat'"):
        fast.encode_queries(pics[:1], ["hat"])
    assert fast.eval() is fast and fast.device == model.device


def test_inference_model_is_the_fast_twin_on_cpu_only():
    model = model_with_random_state(categories=referred.LRVSF_CATEGORIES)
    assert isinstance(inference_model(model), FastCondViT)
    assert inference_model(model, fast=False) is model
    other = torch.nn.Linear(2, 2)  # not a CondViT: passed through
    assert inference_model(other) is other
