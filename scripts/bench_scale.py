#!/usr/bin/env python
"""A large catalog end to end: ``--spec auto`` within a memory budget, tuned, saved, then served.

On the clustered synthetic vectors of ``scripts/bench_index.py`` (same generator), this:

1. times exact single-query search (the ``flat`` index) on the whole catalog;
2. lets :func:`referred.index.auto.choose_spec` pick the spec for ``--n`` vectors within
   ``--memory-budget``, builds it (trained on a seeded sample, as ``referred index build``),
   tunes it to ``--target`` recall@10 on held-out queries and saves it;
3. in a fresh process, loads the saved index as a server does (float vectors memory-mapped),
   answers the held-out queries one at a time and reports recall@10 against the exact
   neighbours, the median latency and the **resident memory the index added** (RSS after
   loading and querying minus RSS before loading) per vector; then times 30 queries against
   exact search over the same vectors, interleaved query by query (a shared machine's load
   hits both alike), for the speed-up.

    python scripts/bench_scale.py --n 2000000 --memory-budget 1.2GB --out /tmp/scale
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import add_generator_args, make_data  # noqa: E402


def rss_bytes() -> int:
    """This process's resident set (VmRSS), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def serve(out: Path, timed_pairs: int = 30) -> dict:
    """Step 3, in this (fresh) process: load, query one at a time, measure."""
    import io

    import faiss  # noqa: F401  (the libraries' own memory is not the index's)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from referred.index import load_index

    buf = (
        io.BytesIO()
    )  # warm parquet's reader and arrow's memory pool: fixed costs, not the index's
    pq.write_table(pa.table({"id": [f"w{i}" for i in range(1000)]}), buf)
    pq.ParquetFile(io.BytesIO(buf.getvalue())).read()

    queries = np.load(out / "queries.npy")
    truth = np.load(out / "truth.npy", allow_pickle=True)
    before = rss_bytes()
    t0 = time.perf_counter()
    index = load_index(out / "index")
    load_s = time.perf_counter() - t0
    after_load = rss_bytes()
    times, hits = [], 0
    for q, want in zip(queries, truth):
        t = time.perf_counter()
        res = index.search(q[None, :], 10)
        times.append(time.perf_counter() - t)
        hits += len(set(res.ids[0]) & set(want))
    after = rss_bytes()
    n = len(index)
    # exact search over the same (memory-mapped) vectors, interleaved query by query with the
    # index's own, so both run under the same load: the speed-up is the ratio of the medians
    from referred.index.vectors import VectorStore, exact_search

    store = VectorStore.load(out / "index" / "vectors.npy", queries.shape[1], n)
    exact_search(store, queries[:1], 10)  # pages the vectors in once
    pairs = []
    for q in queries[:timed_pairs]:
        t = time.perf_counter()
        index.search(q[None, :], 10)
        t_index = time.perf_counter() - t
        t = time.perf_counter()
        exact_search(store, q[None, :], 10)
        pairs.append((t_index, time.perf_counter() - t))
    index_ms = 1000 * statistics.median(p[0] for p in pairs)
    exact_ms = 1000 * statistics.median(p[1] for p in pairs)
    return {
        "n": n,
        "spec": index.spec,
        "options": {k: v for k, v in index.options().items() if k in ("nprobe", "ef_search")},
        "load_s": round(load_s, 2),
        "recall_at_10": hits / (10 * len(queries)),
        "ms_per_query": 1000 * statistics.median(times),
        "resident_after_load_bytes_per_vector": (after_load - before) / n,
        "resident_after_queries_bytes_per_vector": (after - before) / n,
        "interleaved_pairs": len(pairs),
        "interleaved_index_ms": index_ms,
        "interleaved_exact_ms": exact_ms,
        "speedup_interleaved": exact_ms / index_ms,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--memory-budget", default="1.2GB")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--recall-queries", type=int, default=1000)
    add_generator_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        print(json.dumps(serve(args.out)))
        return 0

    from referred.catalog.build import fill_index
    from referred.catalog.tune import exact_for, one_query_ms, tune_to_recall
    from referred.index import create_index
    from referred.index.auto import choose_spec, parse_size

    args.out.mkdir(parents=True, exist_ok=True)
    args.queries = args.recall_queries
    t0 = time.perf_counter()
    base, held_out, _ = make_data(args)
    ids = [f"v{i}" for i in range(args.n)]
    print(f"{args.n} x {args.dim} clustered vectors in {time.perf_counter() - t0:.0f} s")
    flat = create_index("flat", args.dim)
    flat.add(ids, base)
    exact_ms = one_query_ms(flat, held_out[:50], 10)
    del flat
    print(f"exact single query (flat): {exact_ms:.1f} ms (median of 50)")
    choice = choose_spec(args.n, args.dim, parse_size(args.memory_budget))
    print(f"spec auto, budget {args.memory_budget}: {choice.spec} ({choice.reason})")
    if not choice.approximate:
        p.error(f"{args.n} vectors get the exact flat index: nothing to tune or compare")
    t0 = time.perf_counter()
    index = fill_index(choice.spec, ids, base, seed=args.seed)
    print(f"built in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    tuning = tune_to_recall(
        index, ids, base, args.target, n_queries=args.recall_queries, queries=held_out
    )
    print(f"tuned in {time.perf_counter() - t0:.0f} s: {tuning.knob} = {tuning.value}")
    print(f"| {tuning.knob} | recall@10 | ms/query | × exact |\n|---:|---:|---:|---:|")
    for pt in tuning.curve:
        print(f"| {pt.value} | {pt.recall:.3f} | {pt.ms_per_query:.2f} | "
              f"{exact_ms / pt.ms_per_query:.0f} |")  # fmt: skip
    truth = np.empty(len(held_out), dtype=object)
    truth[:] = [list(t) for t in exact_for(ids, base, held_out, 10)]
    np.save(args.out / "queries.npy", held_out)
    np.save(args.out / "truth.npy", truth, allow_pickle=True)
    t0 = time.perf_counter()
    index.save(args.out / "index")
    print(f"saved in {time.perf_counter() - t0:.0f} s")
    del index, base
    served = subprocess.run(
        [sys.executable, __file__, "--serve", "--out", str(args.out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(served.stdout.strip().splitlines()[-1])
    result.update(exact_ms=exact_ms, speedup=exact_ms / result["ms_per_query"])
    print(json.dumps(result, indent=1))
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
