#!/usr/bin/env python
"""Tuning approximate indexes to a target recall@10: the curve and the speed-up it buys.

On the clustered synthetic vectors of ``scripts/bench_index.py`` (same generator and
defaults), each spec is built, then :func:`referred.catalog.tune.tune_to_recall` raises its
``ef_search`` (HNSW) or ``nprobe`` (IVF) until recall@10 against exact search reaches
``--target``, once on held-out queries of the same generator (what a search really asks) and
once on catalog products as queries (what a build without query vectors can use). Exact
single-query latency (the ``flat`` index) is measured in the same run for the speed-up column.
One thread.

    python scripts/bench_tuning.py --n 100000 --target 0.95
    python scripts/bench_tuning.py --n 2000000 --specs "faiss:IVF8192,PQ64x4fsr" --rerank 200

``--specs`` separates specs with ";" (an IVF spec has its own comma).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import add_generator_args, build, make_data  # noqa: E402

from referred.catalog.tune import one_query_ms, tune_to_recall  # noqa: E402
from referred.index import create_index  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--specs", default="faiss:HNSW32;faiss:IVF{nlist},SQ8", help="';'-separated")
    p.add_argument("--rerank", type=int, default=0, help="rerank option for every spec")
    p.add_argument("--recall-queries", type=int, default=1000)
    add_generator_args(p)
    args = p.parse_args(argv)
    args.queries = args.recall_queries
    base, held_out, meta = make_data(args)
    ids = [f"v{i}" for i in range(args.n)]
    flat = create_index("flat", args.dim)
    flat.add(ids, base)
    exact_ms = one_query_ms(flat, base[:100], 10)
    del flat
    nlist = 2 ** round(math.log2(4 * math.sqrt(args.n)))
    print(f"{args.n} x {args.dim} clustered vectors; exact single query {exact_ms:.2f} ms")
    for full in (s.strip() for s in args.specs.replace("{nlist}", str(nlist)).split(";")):
        options = {"rerank": args.rerank} if args.rerank else {}
        index, seconds = build(full, options, base, meta, ids)
        t0 = time.perf_counter()
        for name, queries in (("held-out queries", held_out), ("catalog products", None)):
            t = tune_to_recall(
                index, ids, base, args.target, n_queries=args.recall_queries, queries=queries
            )
            print(f"\n{full}, tuned on {name} (built in {seconds:.0f} s, tuned in "
                  f"{time.perf_counter() - t0:.0f} s)")  # fmt: skip
            print(f"| {t.knob} | recall@10 | ms/query | × exact |\n|---:|---:|---:|---:|")
            for pt in t.curve:
                mark = " **chosen**" if pt.value == t.value and t.reached else ""
                print(
                    f"| {pt.value}{mark} | {pt.recall:.3f} | {pt.ms_per_query:.3f} | "
                    f"{exact_ms / pt.ms_per_query:.1f} |"
                )
            if not t.reached:
                print(f"target {args.target} not reached")
            t0 = time.perf_counter()
        del index
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
