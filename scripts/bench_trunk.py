"""Images/s of the hybrid's frozen EfficientNet-Lite0 trunk: as it is, folded, in micro-batches.

Rows, interleaved within each repetition (the order rotates), medians reported, one thread:
``trunk as is`` (one call on the whole batch: what the memo and inference did before
referred.model.fixed_trunk), ``folded`` (BatchNorm folded, whole batch), ``FixedTrunk``
(folded, micro-batches of N, the default path now) for several N, and the whole hybrid-lite0
encoder (``optimize_for_inference``) with the trunk as is vs through FixedTrunk.

    .venv/bin/python scripts/bench_trunk.py                      # batch 64 and 32, 224 px
    .venv/bin/python scripts/bench_trunk.py --batches 16 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_encoder import cpu_name

import referred
from referred.model import cpu
from referred.model.fast import optimize_for_inference
from referred.model.fixed_trunk import FixedTrunk


def interleaved(calls: dict[str, callable], reps: int) -> dict[str, float]:
    names = list(calls)
    for f in calls.values():  # warm-up
        f()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            t = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t)
    return {n: statistics.median(t) for n, t in times.items()}


def encode_as_is(encoder, model, x, c):
    """The encoder with the trunk itself run on each call's whole chunk (the former path)."""
    model.trunk_memo = lambda t, images: t(images)
    try:
        return encoder(x, c)
    finally:
        model.trunk_memo = None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="64,32")
    p.add_argument("--micro", default="1,2,4")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_name()}; {cpu.summary()}; torch {torch.__version__}; "
          f"{args.threads} thread(s)")  # fmt: skip
    model = referred.create_model("hybrid-lite0", "category", seed=0, pretrained_trunk=True)
    model.eval()
    trunk = model.trunk.requires_grad_(False)
    folded = trunk.folded()
    encoder = optimize_for_inference(model)
    res = model.config.input_resolution
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(batch))
        c = torch.arange(batch) % len(model.config.categories)
        runners = {int(k): FixedTrunk(micro_batch=int(k)) for k in args.micro.split(",")}
        calls = {"trunk as is": lambda x=x: trunk(x), "folded, whole batch": lambda x=x: folded(x)}
        for k, r in runners.items():
            calls[f"FixedTrunk, micro-batch {k}"] = lambda x=x, r=r: r(trunk, x)
        calls["hybrid encoder, trunk as is"] = lambda x=x, c=c: encode_as_is(encoder, model, x, c)
        calls["hybrid encoder, FixedTrunk (default)"] = lambda x=x, c=c: encoder(x, c)
        with torch.inference_mode():
            seconds = interleaved(calls, args.reps)
        base = seconds["trunk as is"]
        enc = seconds["hybrid encoder, trunk as is"]
        print(f"\nbatch {batch} at {res} px, median of {args.reps}")
        print("| path | images/s | × as is |\n|---|---:|---:|")
        for name, s in seconds.items():
            ref = enc if name.startswith("hybrid") else base
            print(f"| {name} | {batch / s:.1f} | {ref / s:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
