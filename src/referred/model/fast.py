"""Opt-in CPU inference path for a CondViT: same call, same outputs, faster.

``optimize_for_inference(model)`` returns a :class:`FastCondViT`, a callable with the model's
``(pixel_values, c) → (B, output_dim)`` contract that runs the transformer on a snapshot of the
weights prepared once:

* every Linear runs on the faster float32 GEMM of this CPU, chosen once per machine by
  :func:`referred.model.cpu.gemm_backend`: oneDNN (``mkldnn::_linear_pointwise``, the op that
  ``torch.compile``'s freezing pass emits, weights reordered once) or ``F.linear`` (MKL's
  sgemm). On an AVX-512 AMD EPYC oneDNN ran about twice MKL's GFLOP/s; on an AVX2-only one
  MKL was the faster (docs/benchmarks.md);
* the residual adds are fused into the ``out_proj`` and ``c_proj`` GEMMs, and QuickGELU into
  ``c_fc``: ``x·σ(1.702x) = silu(1.702x)/1.702``, so 1.702 is folded into ``c_fc`` and 1/1.702
  into ``c_proj``'s weight, and the fused activation is oneDNN's plain swish;
* large batches run in micro-batches, so activations stay in cache and under glibc's mmap
  threshold (32 MiB), whose page faults on every fresh buffer otherwise cost ~20% at batch 32;
* optionally the matmuls run in bfloat16 (weights stored in bfloat16; layer norms, softmax
  accumulation and the residual stream stay float32): on a CPU with ``avx512_bf16``, 1.7× the
  float32 path and 4× the plain float32 model (relative error ~3e-3). Where the CPU has no
  native bfloat16 it is refused with the reason (emulated, it is ~1000× slower).

Like ``CondViT.forward``, the last block computes only the class token's output. The plain
module stays the readable definition; tests check this path against it. Where oneDNN is missing
(or the model is not on the CPU) the same math runs on ``F.linear``. The weights are copied at
optimisation time: later changes to ``model`` are not seen.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from referred.model import cpu
from referred.model.condvit import CondViT
from referred.model.cpu import onednn_available

#: QuickGELU is ``x · sigmoid(1.702 x)``.
GELU_SCALE = 1.702
#: Images per chunk on the CPU: 8 × 198 tokens keeps B/16's largest activation (19 MiB) under
#: glibc's 32 MiB mmap threshold; 1–16 measured within noise of each other, 32 ~25% slower.
DEFAULT_MICRO_BATCH = 8

Linear = tuple[torch.Tensor, torch.Tensor | None]  # weight (N, K), bias (N,)


class _Block(NamedTuple):
    """One transformer block's weights in the compute dtype (layer norms in float32)."""

    ln_1: Linear
    qkv: Linear  # (3W, W); for the last block only the query rows …
    kv: Linear | None  # … and the key/value rows (2W, W) separately
    out: Linear  # (W, W)
    ln_2: Linear
    fc: Linear  # 1.702 · c_fc, (4W, W)
    proj: Linear  # c_proj with its weight / 1.702, (W, 4W)


class FastCondViT:
    """An inference-only twin of a CondViT; build it with :func:`optimize_for_inference`."""

    def __init__(
        self,
        model: CondViT,
        dtype: torch.dtype = torch.float32,
        threads: int | None = None,
        micro_batch: int | None = DEFAULT_MICRO_BATCH,
        backend: str = "auto",
    ) -> None:
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
        on_cpu = model.device.type == "cpu"
        if dtype == torch.bfloat16 and on_cpu:
            cpu.require_native_bf16("optimize_for_inference")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads}")
        if micro_batch is not None and micro_batch < 1:
            raise ValueError(f"micro_batch must be a positive integer or None, got {micro_batch}")
        if backend not in ("auto", "onednn", "torch"):
            raise ValueError(f"backend must be 'auto', 'onednn' or 'torch', got {backend!r}")
        if backend == "onednn" and not (on_cpu and onednn_available()):
            raise ValueError("backend 'onednn' needs a CPU model and a torch built with oneDNN")
        self.model = model  # patch embedding, condition token, ln_post and proj run unchanged
        self.config = model.config
        self.dtype = dtype
        self.threads = threads
        self.micro_batch = micro_batch if on_cpu else None
        if backend == "auto":  # what this CPU runs faster (referred.model.cpu measures it once)
            backend = cpu.gemm_backend() if on_cpu else "torch"
        self.backend = backend
        *blocks, last = model.transformer.resblocks
        with torch.no_grad():
            self.blocks = [self._prepare(b) for b in blocks]
            self.last = self._prepare(last, split_qkv=True)

    def _prepare(self, block: nn.Module, split_qkv: bool = False) -> _Block:
        tokens = self.config.grid**2 + 2
        rows = tokens * (self.micro_batch or 1)  # the GEMMs' usual M, a hint for the packing

        def lin(w: torch.Tensor, b: torch.Tensor, w_scale: float = 1.0, b_scale: float = 1.0):
            w = (w.detach().float() * w_scale).to(self.dtype).contiguous()
            if self.backend == "onednn":  # oneDNN's blocked layout, reordered once, not per call
                w = torch.ops.mkldnn._reorder_linear_weight(w, rows)
            return w, (b.detach().float() * b_scale).to(self.dtype).contiguous()

        def ln(m: nn.LayerNorm) -> Linear:
            return m.weight.detach().float().clone(), m.bias.detach().float().clone()

        attn, width = block.attn, block.attn.out_proj.in_features
        qkv_w, qkv_b = attn.in_proj_weight, attn.in_proj_bias
        fc, proj = block.mlp.c_fc, block.mlp.c_proj
        return _Block(
            ln_1=ln(block.ln_1),
            qkv=lin(qkv_w[:width], qkv_b[:width]) if split_qkv else lin(qkv_w, qkv_b),
            kv=lin(qkv_w[width:], qkv_b[width:]) if split_qkv else None,
            out=lin(attn.out_proj.weight, attn.out_proj.bias),
            ln_2=ln(block.ln_2),
            fc=lin(fc.weight, fc.bias, GELU_SCALE, GELU_SCALE),
            proj=lin(proj.weight, proj.bias, 1.0 / GELU_SCALE),
        )

    # -- kernels ------------------------------------------------------------------------------
    def _linear(self, x: torch.Tensor, wb: Linear, silu: bool = False) -> torch.Tensor:
        """(M, K) → (M, N): ``x @ Wᵀ + b``, then SiLU if asked; in the compute dtype."""
        if self.backend == "onednn":
            attr = "swish" if silu else "none"
            return torch.ops.mkldnn._linear_pointwise(x, wb[0], wb[1], attr, [], "")
        y = F.linear(x, *wb)
        return F.silu(y, inplace=True) if silu else y

    def _linear_add(self, x: torch.Tensor, wb: Linear, residual: torch.Tensor) -> torch.Tensor:
        """``residual + x @ Wᵀ + b`` (float32; the residual buffer may be reused)."""
        if self.backend == "onednn" and self.dtype == torch.float32:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, wb[0], wb[1], "add")
        return residual.add_(self._linear(x, wb))

    def _ln(self, x: torch.Tensor, wb: Linear) -> torch.Tensor:
        """LayerNorm of the float32 residual stream, output in the compute dtype."""
        return F.layer_norm(x, (x.shape[-1],), wb[0], wb[1], 1e-5).to(self.dtype)

    # -- forward ------------------------------------------------------------------------------
    def _block(self, x: torch.Tensor, blk: _Block, b: int, n: int) -> torch.Tensor:
        """Residual stream (B·N, W) float32 → (B·N, W)."""
        w, heads = x.shape[1], self.config.heads
        qkv = self._linear(self._ln(x, blk.ln_1), blk.qkv)  # (B·N, 3W)
        q, k, v = qkv.view(b, n, 3, heads, w // heads).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        x = self._linear_add(o.transpose(1, 2).reshape(b * n, w), blk.out, x)
        h = self._linear(self._ln(x, blk.ln_2), blk.fc, silu=True)  # (B·N, 4W)
        return self._linear_add(h, blk.proj, x)

    def _last_block(self, x: torch.Tensor, blk: _Block, b: int, n: int) -> torch.Tensor:
        """Residual stream (B·N, W) → the class token's output (B, W)."""
        w, heads = x.shape[1], self.config.heads
        hd = w // heads
        y = self._ln(x, blk.ln_1)  # (B·N, W)
        assert blk.kv is not None
        k, v = self._linear(y, blk.kv).view(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        q = self._linear(y.view(b, n, w)[:, 0], blk.qkv)  # (B, W): class-token queries only
        o = F.scaled_dot_product_attention(q.view(b, heads, 1, hd), k, v)  # (B, H, 1, hd)
        x0 = self._linear_add(o.reshape(b, w), blk.out, x.view(b, n, w)[:, 0].contiguous())
        h = self._linear(self._ln(x0, blk.ln_2), blk.fc, silu=True)  # (B, 4W)
        return self._linear_add(h, blk.proj, x0)

    def _forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        m = self.model
        h = m.tokens(x, c).float()  # (B, N, W): checks inputs, embeds, ln_pre
        b, n, w = h.shape
        h = h.reshape(b * n, w)  # (B·N, W)
        for blk in self.blocks:
            h = self._block(h, blk, b, n)
        h0 = self._last_block(h, self.last, b, n)  # (B, W)
        return m.ln_post(h0.to(m.proj.dtype)) @ m.proj  # (B, D)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """pixel_values (B, 3, R, R), condition (as ``CondViT.forward``) → (B, output_dim)."""
        if c is not None and len(c) != len(x):
            raise ValueError(f"{len(c)} conditions for {len(x)} images")
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            k = self.micro_batch or max(len(x), 1)
            if len(x) <= k:
                return self._forward(x, c)
            return torch.cat(
                [
                    self._forward(x[i : i + k], None if c is None else c[i : i + k])
                    for i in range(0, len(x), k)
                ]
            )
        finally:
            if self.threads is not None:
                torch.set_num_threads(previous)

    # -- the CondViT helpers, on this forward ----------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.device

    def eval(self) -> FastCondViT:
        """Already inference-only (for code that calls ``model.eval()``)."""
        return self

    def encode_queries(self, images: Any, conds: Any = None, batch_size: int = 32) -> torch.Tensor:
        """As :meth:`CondViT.encode_queries`, through this forward."""
        from referred.query import QueryEncoder

        return QueryEncoder(self, batch_size=batch_size).encode(images, conds)

    def encode_targets(self, images: Any, batch_size: int = 32) -> torch.Tensor:
        """As :meth:`CondViT.encode_targets`, through this forward."""
        from referred.query import QueryEncoder

        return QueryEncoder(self, batch_size=batch_size).encode(images, None)

    def attention_map(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.attention_map(x, c)

    def __repr__(self) -> str:
        return (
            f"FastCondViT({self.config.name}, dtype={self.dtype}, backend={self.backend!r}, "
            f"threads={self.threads}, micro_batch={self.micro_batch})"
        )


def optimize_for_inference(
    model: CondViT,
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
    micro_batch: int | None = DEFAULT_MICRO_BATCH,
    backend: str = "auto",
) -> FastCondViT:
    """A faster inference-only twin of ``model``: ``fast(pixel_values, c) ≈ model(...)``.

    ``dtype``: ``torch.float32`` (relative error vs ``model`` ~1e-6) or ``torch.bfloat16``
    (matmuls in bfloat16, relative error ~3e-3). ``threads``: torch's intra-op thread count
    during each call (restored afterwards); None leaves it alone. ``micro_batch``: images per
    chunk on the CPU (None: the whole batch at once). ``backend``: ``"auto"`` (this CPU's
    faster GEMM, :func:`referred.model.cpu.gemm_backend`), ``"onednn"`` or ``"torch"``
    (``F.linear``). bfloat16 is refused on a CPU without native bfloat16 (ValueError saying
    why). Returns outputs in float32.
    """
    return FastCondViT(model, dtype, threads, micro_batch, backend)


def inference_model(model: Any, fast: bool = True) -> Any:
    """What embedding jobs and the service run: the float32 fast twin of a CondViT on the CPU
    (same outputs to ~1e-6, 1.2–2.7× faster: docs/benchmarks.md), else ``model`` itself (on a
    GPU, for other model types, or with ``fast=False``)."""
    if fast and isinstance(model, CondViT) and model.device.type == "cpu":
        return optimize_for_inference(model)
    return model


def measure_backends(reps: int = 6, layers: int = 2) -> dict[str, float]:
    """Images/s of this inference path per float32 GEMM backend here: the probe behind
    :func:`referred.model.cpu.gemm_backend` for inference. A B/16-wide CondViT of ``layers``
    random blocks, one 224 px image a call, the backends interleaved and paired
    (:func:`referred.model.cpu.paired_rates`); ~1–2 s on one core."""
    from referred.model.config import ModelConfig

    config = ModelConfig(
        input_resolution=224, patch_size=16, width=768, layers=layers, heads=12, output_dim=512
    )
    model = CondViT(config).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    backends = ["torch", "onednn"] if onednn_available() else ["torch"]
    fast = {name: FastCondViT(model, backend=name) for name in backends}
    calls = {name: functools.partial(f, x) for name, f in fast.items()}
    return cpu.paired_rates(cpu.time_interleaved(calls, reps))
