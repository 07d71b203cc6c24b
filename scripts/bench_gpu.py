"""One GPU, three measurements, side by side with their baselines in the same run.

``encoder``: images/s of B/16 at 224 px, referred's ``CondViT`` against the reference-style
model (OpenAI CLIP's VisionTransformer, ``scripts/clip_reference.py``), same weights, float32
with TF32 off (outputs must agree within 1e-4 relative) and bfloat16 (autocast; CLIP's own
``convert_weights`` in bf16 for the reference). ``train``: samples/s of full training steps
(conditioned scene + product forward, symmetric InfoNCE, backward, AdamW) in bf16 autocast.
``flat``: exact inner-product search over N random unit vectors (FAISS GPU flat when
``faiss`` with GPU support imports, else torch matmul + top-k, the only engine then), single
queries and batches, float32 and float16, with the float16 top-10 recall against float32.

    python scripts/bench_gpu.py --out gpu.json                    # on the GPU
    python scripts/bench_gpu.py --device cpu --quick              # the logic, seconds, no GPU

Every section runs on its own: one that fails is reported (``error``) and the others go on.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import OursPair, ReferencePair, time_steps
from clip_reference import ClipCondViT, convert_weights_bf16

import referred

FP32_TOL = 1e-4


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": p.name,
            "gpu_memory_gib": round(p.total_memory / 2**30, 1),
            "multiprocessors": p.multi_processor_count,
            "cuda": torch.version.cuda,
            "bf16": torch.cuda.is_bf16_supported(),
        }
    return env


def model(arch: str, quick: bool, device: torch.device) -> referred.CondViT:
    if quick:
        cfg = referred.ModelConfig(
            input_resolution=32,
            patch_size=8,
            width=64,
            layers=2,
            heads=2,
            output_dim=32,
            categories=referred.LRVSF_CATEGORIES,
        )
        m = referred.create_model(cfg, seed=0)
    else:
        m = referred.create_model(arch, "category", seed=0)
    return m.to(device).eval()


# -- encoder ----------------------------------------------------------------------------------
def _encoder_calls(m, ref, ref_bf16, x, c, device) -> dict[tuple[str, str], Callable[[], object]]:
    def autocast_bf16(module):
        def run():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return module(x, c)

        return run

    return {
        ("reference (CLIP-style)", "fp32"): lambda: ref(x, c),
        ("referred CondViT", "fp32"): lambda: m(x, c),
        ("reference (CLIP-style), bf16 weights", "bf16"): lambda: ref_bf16(x.bfloat16(), c),
        ("reference (CLIP-style)", "bf16 autocast"): autocast_bf16(ref),
        ("referred CondViT", "bf16 autocast"): autocast_bf16(m),
    }


def encoder(m: referred.CondViT, device, batches: list[int], reps: int) -> list[dict]:
    ref = ClipCondViT.from_condvit(m).to(device).eval()
    ref_bf16 = convert_weights_bf16(copy.deepcopy(ref))
    res = m.config.input_resolution
    rows = []
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for batch in batches:
        g = torch.Generator(device="cpu").manual_seed(batch)
        x = torch.randn(batch, 3, res, res, generator=g).to(device)
        c = (torch.arange(batch) % len(m.config.categories)).to(device)
        with torch.inference_mode():
            want = ref(x, c).double()
            impls = _encoder_calls(m, ref, ref_bf16, x, c, device)
            for (name, dtype), fn in impls.items():
                y = fn().double()
                err = float(((y - want).norm(dim=1) / want.norm(dim=1)).max())
                sec = timed(fn, device, reps)
                rows.append(
                    {
                        "model": name,
                        "dtype": dtype,
                        "batch": batch,
                        "images_per_s": batch / sec,
                        "rel_error_vs_reference_fp32": err,
                    }
                )
                print(
                    f"  {name:38s} {dtype:13s} batch {batch:4d}: {batch / sec:9.1f} images/s "
                    f"(rel. error {err:.1e})",
                    flush=True,
                )
    for r in rows:
        if r["dtype"] == "fp32" and r["rel_error_vs_reference_fp32"] > FP32_TOL:
            raise AssertionError(f"float32 outputs differ: {r}")
    return rows


# -- training ---------------------------------------------------------------------------------
def training(m: referred.CondViT, device, batch: int, steps: int, precisions) -> list[dict]:
    ours = copy.deepcopy(m).train()
    ref = ClipCondViT.from_condvit(m).to(device).train()
    res = m.config.input_resolution
    rows = []
    torch.backends.cuda.matmul.allow_tf32 = True  # what a user trains with on a GPU
    for precision in precisions:
        for name, pair in (
            ("referred CondViT", OursPair(ours)),
            ("reference (nn.MultiheadAttention)", ReferencePair(ref)),
        ):
            rate, _ = time_steps(pair, batch, res, steps, precision, device)
            rows.append(
                {"model": name, "precision": precision, "batch": batch, "samples_per_s": rate}
            )
            print(f"  {name:38s} {precision}: {rate:8.1f} samples/s (batch {batch})", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


# -- flat search ------------------------------------------------------------------------------
def flat(n: int, dim: int, device, k: int = 10, reps: int = 20) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(1024, dim, generator=g), dim=1)
    rows = []
    try:
        import faiss

        gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except ImportError:
        gpu = False
    if gpu and device.type == "cuda":
        res = faiss.StandardGpuResources()
        index = faiss.GpuIndexFlatIP(res, dim)
        index.add(base.numpy())
        for nq in (1, 1024):
            q = queries[:nq].numpy()
            sec = timed(lambda q=q: index.search(q, k), torch.device("cpu"), reps)
            rows.append({"engine": "faiss GpuIndexFlatIP", "queries": nq, "qps": nq / sec})
    truth = None
    for dtype in (torch.float32, torch.float16):
        db = base.to(device, dtype)
        qs = queries.to(device, dtype)
        for nq in (1, 1024):
            q = qs[:nq]
            sec = timed(lambda q=q, db=db: torch.topk(q @ db.T, k, dim=1), device, reps)
            row = {"engine": f"torch matmul+topk {str(dtype)[6:]}", "queries": nq, "qps": nq / sec}
            rows.append(row)
        ids = torch.topk(qs @ db.T, k, dim=1).indices.cpu()
        if truth is None:
            truth = ids
        else:
            hit = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(ids, truth)]
            for row in rows[-2:]:
                row["recall@10_vs_fp32"] = sum(hit) / len(hit)
        del db
    for row in rows:
        recall = row.get("recall@10_vs_fp32")
        note = f" recall@10 vs fp32 {recall:.4f}" if recall is not None else ""
        print(f"  {row['engine']:32s} {row['queries']:5d} queries: {row['qps']:10.1f} q/s{note}")
    return [dict(r, vectors=n, dim=dim) for r in rows]


def section(name: str, out: dict, fn: Callable[[], object]) -> None:
    print(f"[{name}]", flush=True)
    t = time.perf_counter()
    try:
        out[name] = fn()
    except Exception as exc:  # one failing section must not hide the others
        traceback.print_exc()
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"[{name}] {time.perf_counter() - t:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="B-16")
    p.add_argument("--batches", default="1,256", help="encoder batch sizes")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=8)
    p.add_argument("--precisions", default="bf16", help="training precisions, e.g. bf16,fp32")
    p.add_argument("--vectors", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--quick", action="store_true", help="a tiny model and index: the logic only")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here (use --device cpu --quick to check the logic)")
    if args.quick:
        args.batches, args.reps, args.train_batch, args.train_steps = "1,4", 2, 4, 1
        args.vectors, args.dim = 5000, 32
    result: dict = {"environment": environment(device)}
    print(json.dumps(result["environment"]), flush=True)
    m = model(args.arch, args.quick, device)
    batches = [int(b) for b in args.batches.split(",")]
    section("encoder", result, lambda: encoder(m, device, batches, args.reps))
    precisions = args.precisions.split(",")
    section(
        "train", result, lambda: training(m, device, args.train_batch, args.train_steps, precisions)
    )
    section("flat", result, lambda: flat(args.vectors, args.dim, device))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(isinstance(v, dict) and "error" in v for v in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
