"""Memory held by the frozen-trunk memo against the bytes of the maps it stores.

Random images of ``--size`` px, batches of 64, through :class:`referred.model.trunk_memo.TrunkMemo`
on hybrid-lite0's trunk (random weights: the memory, not the maps, is measured), one thread;
prints the process's resident memory beside the memo's stored bytes every 50 batches
(docs/benchmarks.md, "The zoom recipe in one CPU hour")::

    python scripts/bench_memo_memory.py --size 128 --batches 201
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import referred
from referred.model.config import architecture
from referred.model.trunk_memo import TrunkMemo


def resident_gb() -> float:
    """This process's resident memory (Linux /proc), in GB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="input resolution (px)")
    p.add_argument("--batches", type=int, default=201)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    arch = {**architecture("hybrid-lite0"), "input_resolution": args.size}
    model = referred.create_model(arch, conditioning="category", pretrained_trunk=False).eval()
    memo, t0 = TrunkMemo(int(6e9)), time.perf_counter()
    print(f"before: resident {resident_gb():.2f} GB")
    for i in range(args.batches):
        with torch.no_grad():
            memo(model.trunk, torch.randn(64, 3, args.size, args.size))
        if i % 50 == 0 or i == args.batches - 1:
            print(
                f"batch {i}: resident {resident_gb():.2f} GB, maps {memo.stats.bytes / 1e9:.2f} GB"
                f" ({memo.stats.stored} maps), {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
