"""Images/s of the CondViT encoder on this CPU next to a CLIP-style reference, timed together.

Rows: ``reference`` (OpenAI CLIP's VisionTransformer as published, with nn.MultiheadAttention,
scripts/clip_reference.py), ``CondViT.forward`` (referred's module) and
``optimize_for_inference`` (referred.model.fast), in float32 and optionally bfloat16, at each
batch size and thread count. Implementations are interleaved within each repetition (the order
rotates) and medians reported; the fp32/bf16 matmul peaks are measured in the same run, before
and after the model timings. Every float32 row must match the reference within 1e-4 relative.

    .venv/bin/python scripts/bench_encoder.py                     # B-16: batch 1,32; threads 1,2
    .venv/bin/python scripts/bench_encoder.py --quick             # tiny smoke run, seconds
    .venv/bin/python scripts/bench_encoder.py --compile           # + a torch.compile row
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_reference import ClipCondViT, convert_weights_bf16

import referred
from referred.model import cpu
from referred.model.config import ModelConfig, architecture
from referred.model.fast import onednn_available, optimize_for_inference

FP32_TOL = 1e-4
REF = "reference (CLIP-style)"


@dataclass
class Impl:
    name: str
    dtype: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    flops: float  # per image, as executed
    bf16_input: bool = False


# -- FLOPs and peaks --------------------------------------------------------------------------
def model_flops(cfg: ModelConfig, cls_only_last: bool = False) -> float:
    """Multiply-adds × 2 per conditioned image: patch conv, qkv/out/MLP GEMMs, QKᵀ and PV.

    ``cls_only_last``: the last block computes queries, out-projection and MLP for the class
    token only (as referred does); the reference computes them for all N tokens.
    """
    w, n, g2 = cfg.width, cfg.grid**2 + 2, cfg.grid**2
    hidden = int(w * cfg.mlp_ratio)
    conv = 2 * g2 * w * 3 * cfg.patch_size**2
    per_token = 2 * (3 * w * w + w * w + 2 * w * hidden)  # qkv, out, c_fc, c_proj
    attention = 2 * 2 * n * n * w  # QKᵀ and PV, all heads
    layer = n * per_token + attention
    total = conv + cfg.layers * layer + 2 * w * cfg.output_dim
    if cls_only_last:
        saved = (n - 1) * 2 * (w * w + w * w + 2 * w * hidden)  # q, out, MLP for N-1 tokens
        total -= saved + attention - 2 * 2 * n * w  # attention for one query
    return float(total)


def matmul_probe(n: int, dtype: torch.dtype, backend: str) -> Callable[[], object]:
    """A call computing an n×n @ n×n product, with torch.mm or oneDNN's linear."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    if backend == "onednn":
        packed = torch.ops.mkldnn._reorder_linear_weight(b, n)
        return lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    return lambda: torch.mm(a, b)


PEAKS = {  # label: (dtype, backend); each is timed inside every round of model timings
    "fp32 torch.mm (MKL)": (torch.float32, "torch"),
    "fp32 oneDNN": (torch.float32, "onednn"),
    "bf16 torch.mm (oneDNN)": (torch.bfloat16, "torch"),
}


# -- models -----------------------------------------------------------------------------------
def build(arch: str, quick: bool) -> referred.CondViT:
    spec = architecture(arch)
    if quick:
        spec["conv_stem"] = []  # the reference covers CLIP's patchify stem only
    cfg = ModelConfig(**spec, categories=referred.LRVSF_CATEGORIES)
    if cfg.conv_stem:
        raise SystemExit(f"--arch {arch} has a conv stem; the CLIP-style reference has none")
    return referred.create_model(cfg, seed=0)


def implementations(model: referred.CondViT, dtypes: list[str], compile_: bool) -> list[Impl]:
    cfg = model.config
    full, pruned = model_flops(cfg), model_flops(cfg, cls_only_last=True)
    ref = ClipCondViT.from_condvit(model)
    default = optimize_for_inference(model)  # the backend this CPU chose (referred.model.cpu)
    impls = [
        Impl(REF, "fp32", ref, full),
        Impl("CondViT.forward", "fp32", model, pruned),
        Impl(f"optimize_for_inference [{default.backend}, default]", "fp32", default, pruned),
    ]
    for other in ("torch", "onednn"):
        if other != default.backend and (other == "torch" or onednn_available()):
            fast = optimize_for_inference(model, backend=other)
            impls.append(Impl(f"optimize_for_inference [{other}]", "fp32", fast, pruned))
    if compile_:
        t = time.perf_counter()
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(*example(model, 1))
        print(f"torch.compile: first call (compilation) {time.perf_counter() - t:.1f} s")
        impls.append(Impl("torch.compile(CondViT)", "fp32", compiled, pruned))
    if "bf16" in dtypes:
        ref_bf16 = convert_weights_bf16(copy.deepcopy(ref))
        impls.append(Impl(REF, "bf16", ref_bf16, full, bf16_input=True))
        fast_bf16 = optimize_for_inference(model, dtype=torch.bfloat16)
        impls.append(Impl("optimize_for_inference", "bf16", fast_bf16, pruned))
    return impls


def example(model: referred.CondViT, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    r = model.config.input_resolution
    x = torch.randn(batch, 3, r, r, generator=g)
    return x, torch.arange(batch) % len(model.config.categories)


def call(impl: Impl, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return impl.fn(x.bfloat16() if impl.bf16_input else x, c)


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest per-image relative L2 error."""
    y, ref = y.double(), ref.double()
    return float(((y - ref).norm(dim=1) / ref.norm(dim=1)).max())


@torch.inference_mode()
def time_interleaved(
    calls: list[Callable[[], object]], reps: int, warmup: int
) -> list[list[float]]:
    """Seconds per call for each callable; within a repetition the order rotates."""
    for _ in range(warmup):
        for f in calls:
            f()
    times: list[list[float]] = [[] for _ in calls]
    for r in range(reps):
        for i in [(r + k) % len(calls) for k in range(len(calls))]:
            t = time.perf_counter()
            calls[i]()
            times[i].append(time.perf_counter() - t)
    return times


# -- report -----------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    flags = set(next(ln for ln in text.splitlines() if ln.startswith("flags")).split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def parse_list(text: str, kind: type = int) -> list:
    return [kind(t) for t in text.split(",") if t.strip()]


@dataclass
class Row:
    impl: Impl
    batch: int
    threads: int
    seconds: float  # median per call
    peak: float  # GFLOP/s of the dtype's best matmul, timed in the same rounds
    rel_error: float


def measure(impls: list[Impl], model, args, peak_log: dict) -> list[Row]:
    """Time every implementation (and the matmul probes) at each thread count and batch."""
    probes = {
        label: matmul_probe(args.peak_size, dtype, backend)
        for label, (dtype, backend) in PEAKS.items()
        if (backend != "onednn" or onednn_available())
        and (dtype != torch.bfloat16 or "bf16" in args.dtypes_run)
    }
    rows = []
    for threads in parse_list(args.threads):
        torch.set_num_threads(threads)
        for batch in parse_list(args.batch_sizes):
            print(f"timing batch {batch} on {threads} thread(s) …", file=sys.stderr, flush=True)
            x, c = example(model, batch)
            calls = [functools.partial(call, i, x, c) for i in impls] + list(probes.values())
            reps = args.repeats if batch <= 4 else args.repeats_large
            times = time_interleaved(calls, reps, warmup=2 if batch <= 4 else 1)
            flops = 2 * args.peak_size**3 / 1e9
            gflops = {
                k: statistics.median(flops / t for t in ts)
                for k, ts in zip(probes, times[len(impls) :])
            }
            for k, v in gflops.items():
                peak_log.setdefault((k, threads), []).append(v)
            with torch.inference_mode():
                ys = [call(i, x, c).float() for i in impls]
            for impl, ts, y in zip(impls, times, ys):
                fp32 = [v for k, v in gflops.items() if k.startswith("fp32")]
                peak = max(fp32) if impl.dtype == "fp32" else gflops["bf16 torch.mm (oneDNN)"]
                rows.append(
                    Row(impl, batch, threads, statistics.median(ts), peak, rel_error(y, ys[0]))
                )
    return rows


def report(rows: list[Row], peak_log: dict, args) -> bool:
    """Print the Markdown tables; True when every float32 row matches the reference."""
    thread_counts = parse_list(args.threads)
    print(f"Matmul peak ({args.peak_size}² @ {args.peak_size}², median GFLOP/s over all rounds):\n")
    print("| matmul | " + " | ".join(f"{t} thread(s)" for t in thread_counts) + " |")
    print("|---|" + "---|" * len(thread_counts))
    for label in PEAKS:
        vals = [peak_log.get((label, t)) for t in thread_counts]
        if all(vals):
            print(f"| {label} | " + " | ".join(f"{statistics.median(v):.0f}" for v in vals) + " |")
    print(
        "\n| implementation | dtype | batch | threads | images/s (median) | × reference | "
        "GFLOP/s | % of peak | rel. error vs reference fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ref = {(r.batch, r.threads): r.seconds for r in rows if is_ref(r.impl)}
    ok = True
    for r in sorted(rows, key=lambda r: (r.batch, r.threads)):
        ips = r.batch / r.seconds
        gflops = r.impl.flops * ips / 1e9
        ok &= r.impl.dtype != "fp32" or r.rel_error < FP32_TOL
        print(
            f"| {r.impl.name} | {r.impl.dtype} | {r.batch} | {r.threads} | {ips:.2f} | "
            f"{ref[(r.batch, r.threads)] / r.seconds:.2f}× | {gflops:.0f} | "
            f"{100 * gflops / r.peak:.0f}% | {r.rel_error:.1e} |"
        )
    print("\nBest thread count per implementation (× the reference at its best thread count):\n")
    for batch in parse_list(args.batch_sizes):
        best_ref = min(r.seconds for r in rows if r.batch == batch and is_ref(r.impl))
        for impl in {r.impl.name + " " + r.impl.dtype: r.impl for r in rows}.values():
            best = min(
                (r for r in rows if r.impl is impl and r.batch == batch), key=lambda r: r.seconds
            )
            print(
                f"- batch {batch}, {impl.name} {impl.dtype}: {batch / best.seconds:.2f} images/s "
                f"at {best.threads} thread(s), {best_ref / best.seconds:.2f}×"
            )
    verdict = "yes" if ok else "NO"
    print(f"\nfloat32 outputs within {FP32_TOL:g} relative of the reference: {verdict}")
    return ok


def is_ref(impl: Impl) -> bool:
    return impl.name == REF and impl.dtype == "fp32"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="B-16")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=7, help="timed repetitions at batch ≤ 4")
    p.add_argument("--repeats-large", type=int, default=3, help="timed repetitions above 4")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--compile", action="store_true", help="add a torch.compile(CondViT) row")
    p.add_argument("--quick", action="store_true", help="tiny patchify model, seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.arch, args.batch_sizes, args.threads = "tiny", "1,4", "1"
        args.repeats, args.repeats_large, args.peak_size = 3, 3, 512
    dtypes = parse_list(args.dtypes, str)
    if set(dtypes) - {"fp32", "bf16"}:
        raise SystemExit(f"--dtypes takes fp32 and/or bf16, got {args.dtypes!r}")
    if "bf16" in dtypes and cpu.bf16_problem():  # emulated: one 2048² product takes minutes
        print(f"bf16 rows skipped: {cpu.bf16_problem()}")
        dtypes.remove("bf16")

    model = build(args.arch, args.quick)
    cfg = model.config
    args.dtypes_run = dtypes
    impls = implementations(model, dtypes, args.compile)
    print(f"# CondViT-{cfg.name} encoder benchmark ({cfg.input_resolution} px, conditioned)")
    print(f"cpu: {cpu_name()}, {os.cpu_count()} logical CPUs; flags: {cpu_flags()}")
    print(f"referred: {cpu.summary()}")
    print(f"torch {torch.__version__}, oneDNN linear available: {onednn_available()}")
    print(f"load average at start: {fmt_load()}")
    print(
        f"GFLOP per image: {model_flops(cfg) / 1e9:.2f} (full forward), "
        f"{model_flops(cfg, True) / 1e9:.2f} (class token only in the last block)"
    )
    peak_log: dict = {}
    rows = measure(impls, model, args, peak_log)
    print(f"load average at end: {fmt_load()}\n")
    return 0 if report(rows, peak_log, args) else 1


def fmt_load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg()) + " (1, 5, 15 min)"


if __name__ == "__main__":
    raise SystemExit(main())
