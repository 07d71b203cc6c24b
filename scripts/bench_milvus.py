#!/usr/bin/env python
"""The milvus: spec on a real Milvus server: recall@10 and latency against exact search.

Starts a Milvus 2.3.5 standalone server (``scripts/milvus_server.py``; or ``--uri`` for one
already running), loads the clustered vectors of ``scripts/bench_index.py`` (same generator
and defaults), and measures, over held-out queries, one query at a time:

* ``old defaults``: the settings the backend had before it met a server (AUTOINDEX, Strong
  consistency, no exact filter path), searched right after the inserts, as a build did;
* ``HNSW ef=E``: the current defaults (HNSW M 16, efConstruction 200, Session consistency,
  filters matching <= 1,000 products answered exactly) after ``wait_until_indexed``, for a
  few ``ef_search`` values.

Columns: recall@10 against the exact top-10 (flat), and with the filters ``rare`` (1% of the
catalog) and ``category`` (10%); median single-query milliseconds, unfiltered and with each
filter; exact (flat, numpy, 1 thread) single-query milliseconds for comparison. The last row
turns the exact filter path off (``exact_filter_rows=0``): Milvus filters every search.

    python scripts/bench_milvus.py                    # 20,000 x 512, 200 queries
    python scripts/bench_milvus.py --n 100000 --ef 64,128
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import make_data  # noqa: E402
from milvus_server import start_server  # noqa: E402

from referred.index import create_index  # noqa: E402

FILTERS = {"none": None, "rare 1%": {"rare": True}, "category 10%": {"category": "3"}}


def measure(index, queries: np.ndarray, truth: dict, k: int = 10) -> dict:
    row = {}
    for name, flt in FILTERS.items():
        lat, got = [], []
        for q in queries:
            t0 = time.perf_counter()
            got.append(index.search(q[None], k, filter=flt).ids[0])
            lat.append(time.perf_counter() - t0)
        want = truth[name]
        row[f"recall {name}"] = float(
            np.mean(
                [
                    len(set(g) & set(w) - {""}) / max(1, len(set(w) - {""}))
                    for g, w in zip(got, want)
                ]
            )
        )
        row[f"ms {name}"] = 1e3 * float(np.median(lat))
    return row


def fill(index, ids, base, meta, batch: int = 10_000) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(ids), batch):
        stop = min(start + batch, len(ids))
        index.add(ids[start:stop], base[start:stop], meta.slice(start, stop - start))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", default="32,64,128,256", help="ef_search values, comma-separated")
    p.add_argument("--uri", help="a running Milvus (default: start one for the run)")
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base, queries, meta = make_data(args)
    ids = [f"v{i}" for i in range(args.n)]
    flat = create_index("flat", args.dim)
    flat.add(ids, base, meta)
    truth = {name: flat.search(queries, 10, filter=f).ids for name, f in FILTERS.items()}
    exact = measure(flat, queries, truth)
    print(
        f"{args.n} x {args.dim}, {len(queries)} held-out queries; exact (flat) single query: "
        f"{exact['ms none']:.1f} ms, {exact['ms rare 1%']:.1f} ms with the 1% filter"
    )

    server = None
    if args.uri is None:
        server = start_server(Path(tempfile.mkdtemp(prefix="bench-milvus-")))
        print(f"Milvus 2.3.5 standalone started in {server.started_in_s:.1f} s")
    uri = args.uri or server.uri
    rows = []
    try:
        old = create_index(
            f"milvus:{uri}", args.dim, collection=f"bench_old_{os.getpid()}",
            index_type="AUTOINDEX", index_params={}, consistency_level="Strong",
            exact_filter_rows=0,
        )  # fmt: skip
        insert_s = fill(old, ids, base, meta)
        rows.append(
            {"setting": "old defaults, right after the inserts", **measure(old, queries, truth)}
        )
        print(f"old defaults: inserted in {insert_s:.1f} s")

        new = create_index(f"milvus:{uri}", args.dim, collection=f"bench_new_{os.getpid()}")
        insert_s = fill(new, ids, base, meta)
        t0 = time.perf_counter()
        new.wait_until_indexed()
        served_s = time.perf_counter() - t0
        print(f"HNSW: inserted in {insert_s:.1f} s, indexed and served {served_s:.1f} s later")
        for ef in (int(v) for v in args.ef.split(",")):
            new.ef_search = ef
            rows.append({"setting": f"HNSW ef={ef}", **measure(new, queries, truth)})
        new.ef_search, new.exact_filter_rows = 128, 0
        rows.append({"setting": "HNSW ef=128, Milvus filters all", **measure(new, queries, truth)})
        for index in (old, new):
            index._client.drop_collection(index.collection)
    finally:
        if server is not None:
            server.stop()
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    head = "| setting | recall@10 | 1% filter | 10% filter | ms / query | ms, 1% | ms, 10% |"
    out = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(
            f"| {r['setting']} | {r['recall none']:.3f} | {r['recall rare 1%']:.3f} | "
            f"{r['recall category 10%']:.3f} | {r['ms none']:.1f} | {r['ms rare 1%']:.1f} | "
            f"{r['ms category 10%']:.1f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
