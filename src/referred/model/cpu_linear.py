"""Training-speed linear layers on the CPU: the same math as ``F.linear``, through oneDNN.

On an AVX-512 AMD EPYC, ``F.linear`` in float32 calls MKL's sgemm, which runs at AVX2 speed
there (~85 GFLOP/s on one core), while oneDNN's ``mkldnn::_linear_pointwise`` uses AVX-512
(~200 GFLOP/s) for the same products (docs/benchmarks.md, "Training"); on an AVX2-only host MKL
is the faster one, so :func:`use_onednn_linears` follows :func:`referred.model.cpu.gemm_backend`.
:func:`onednn_linear` is the inference path's oneDNN product as an autograd function:

* forward ``y = x Wᵀ + b`` and the input gradient ``∂x = ∂y W`` are oneDNN linears (``W`` and
  ``Wᵀ`` as plain row-major weights: weights change every step, so they are not reordered);
* the weight gradient ``∂W = ∂yᵀ x`` is a oneDNN linear of the transposed copies;
* the bias gradient is a column sum.

:func:`use_onednn_linears` switches every linear of a CondViT (attention projections and MLP)
to it, or back; the parameters and their names do not change. Autocast, other dtypes or devices
fall back to ``F.linear`` call by call, so a model switched on stays correct anywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from referred.model import cpu
from referred.model.cpu import onednn_available

LinearFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _mm(a: torch.Tensor, b_rows: torch.Tensor) -> torch.Tensor:
    """``a @ b_rowsᵀ`` for contiguous float32 (M, K) and (N, K) → (M, N), by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b_rows, None, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """2-D contiguous float32 ``x`` (M, K), ``weight`` (N, K), ``bias`` (N,) or None."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        w = weight.contiguous()
        ctx.save_for_backward(x, w)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")  # (M, N)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, w = ctx.saved_tensors
        g = grad.contiguous()  # (M, N)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _mm(g, w.t().contiguous())  # (M, K)
        if ctx.needs_input_grad[1]:
            gw = _mm(g.t().contiguous(), x.t().contiguous())  # (N, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def onednn_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` through oneDNN where that is exact (float32 on the CPU,
    no autocast); ``F.linear`` otherwise."""
    if (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and (bias is None or bias.dtype == torch.float32)
        and not torch.is_autocast_enabled("cpu")
        and x.numel() > 0
    ):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()  # (M, K)
        y = _OneDNNLinear.apply(x2, weight, bias)  # (M, N)
        return y.view(*x.shape[:-1], weight.shape[0])  # a view made outside the Function
    return F.linear(x, weight, bias)


def use_onednn_linears(model: nn.Module, enabled: bool | None = None) -> bool:
    """Route every linear of ``model`` (a CondViT) through :func:`onednn_linear`, or back to
    ``F.linear``. ``enabled=None`` follows this CPU's faster GEMM
    (:func:`referred.model.cpu.gemm_backend`). Returns whether oneDNN is now in use (False where
    it is unavailable or not wanted)."""
    if enabled is None:
        enabled = cpu.gemm_backend("training") == "onednn"
    on = enabled and onednn_available()
    fn: LinearFn = onednn_linear if on else F.linear
    for module in model.modules():
        if hasattr(module, "linear_fn"):
            module.linear_fn = fn
    return on


def measure_backends(reps: int = 5, rows: int = 256, width: int = 768) -> dict[str, float]:
    """Steps/s of a training step's products per float32 backend here: the probe behind
    :func:`referred.model.cpu.gemm_backend` for training. An MLP (B/16's up- and
    down-projection, ``rows`` tokens) forward and backward through ``F.linear`` or
    :func:`onednn_linear`, the backends interleaved and paired; ~1 s on one core."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=g)
    shapes = ((4 * width, width), (4 * width,), (width, 4 * width), (width,))
    params = [torch.randn(s, generator=g).mul_(0.02).requires_grad_() for s in shapes]

    def step(linear: LinearFn) -> None:
        for p in params:
            p.grad = None
        h = F.silu(linear(x, params[0], params[1]))
        linear(h, params[2], params[3]).sum().backward()

    fns: dict[str, LinearFn] = {"torch": F.linear}
    if onednn_available():
        fns["onednn"] = onednn_linear
    calls = {name: functools.partial(step, fn) for name, fn in fns.items()}
    return cpu.paired_rates(cpu.time_interleaved(calls, reps))
