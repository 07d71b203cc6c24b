#!/usr/bin/env python
"""Embedding throughput: the local engine against a two-node Ray cluster on this host.

Starts Ray's multi-node harness (``ray.cluster_utils.Cluster``): a head node and a worker node,
``--cpus`` CPUs each, bound to 127.0.0.1 (as tests/catalog/test_ray_cluster.py does), then
embeds, one torch thread per process:

* ``catalog``: the test distractors of a synthetic dataset (``referred data synth``, JPEG bytes
  in a parquet catalog), as ``referred index build`` embeds them, ``--engine local`` and
  ``--engine ray --ray-address`` (Ray Data, one model actor per CPU);
* ``benchmark``: the embedding of ``referred benchmark`` on the same dataset (test queries,
  targets and distractors), local and ``--engine ray`` (one Ray task per batch);
* ``ray start-up``: the same Ray catalog job on 2 images: connecting, the model into the
  object store, actors started.

Each row: wall seconds of the embedding (Ray: including its start-up), images per second, and
the largest difference from the local vectors.

    python scripts/bench_ray.py                        # demo model, 600 distractors, 224 px
    python scripts/bench_ray.py --model runs/x/best --distractors 2000
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray keeps 127.0.0.1 (read on import)

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from referred.catalog import build_catalog_index  # noqa: E402
from referred.catalog.cache import read_embeddings  # noqa: E402
from referred.data import open_dataset  # noqa: E402
from referred.data.synth import SynthConfig, write_synthetic_dataset  # noqa: E402
from referred.demo import DEMO_MODEL_DIR  # noqa: E402
from referred.eval import run_benchmark  # noqa: E402
from referred.model import load_model  # noqa: E402
from referred.query import QueryEncoder  # noqa: E402


def catalog(root: Path, path: Path) -> int:
    rows = [
        (str(d.distractor_id), d.image.read_bytes()) for d in open_dataset(root).distractors("test")
    ]
    pq.write_table(pa.table({"id": [r[0] for r in rows], "image": [r[1] for r in rows]}), path)
    return len(rows)


def diff(a: Path, b: Path) -> float:
    (ia, va), (ib, vb) = read_embeddings(a), read_embeddings(b)
    assert sorted(ia) == sorted(ib) and len(set(ib)) == len(ib)
    row = {k: i for i, k in enumerate(ib)}
    return float(np.abs(va - vb[[row[k] for k in ia]]).max())


def cache_diff(a: Path, b: Path) -> float:
    worst = 0.0
    for part in sorted(a.glob("*/part-*.parquet")):
        twin = b / part.relative_to(a)
        assert read_embeddings(part)[0] == read_embeddings(twin)[0]
        if read_embeddings(part)[1].size:
            worst = max(
                worst, float(np.abs(read_embeddings(part)[1] - read_embeddings(twin)[1]).max())
            )
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=str(DEMO_MODEL_DIR))
    ap.add_argument("--products", type=int, default=200, help="synthetic products (half are test)")
    ap.add_argument("--distractors", type=int, default=600)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cpus", type=int, default=1, help="CPUs of each node")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (data, outputs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    t0 = time.perf_counter()
    cfg = SynthConfig(products=args.products, distractors=args.distractors, size=args.size,
                      test_fraction=0.5, valid_fraction=0.05)  # fmt: skip
    write_synthetic_dataset(work / "ds", cfg)
    n = catalog(work / "ds", work / "cat.parquet")
    pq.write_table(pq.read_table(work / "cat.parquet").slice(0, 2), work / "two.parquet")
    print(f"data: {n} catalog images, {time.perf_counter() - t0:.0f} s; model {args.model}")
    print(f"load average before: {os.getloadavg()}")
    model = load_model(args.model)
    kw = {"batch_size": args.batch_size, "progress": False, "recall_queries": 0}
    rows = []
    local = build_catalog_index(model, work / "local", source=work / "cat.parquet", **kw)
    rows.append(("catalog", "local", n, local.embed_seconds, 0.0))
    bench = {"distractor_counts": (0, args.distractors), "batch_size": args.batch_size}
    encoder = QueryEncoder(model, batch_size=args.batch_size)
    lb = run_benchmark(encoder, work / "ds", out_dir=work / "bl", **bench)
    m = sum(len(read_embeddings(p)[0]) for p in (work / "bl/embeddings").glob("*/part-*.parquet"))
    rows.append(("benchmark", "local", m, lb.report["timing"]["embed_s"], 0.0))

    head = {"num_cpus": args.cpus, "include_dashboard": False, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    session = cluster.head_node.get_session_dir_path()
    try:
        cluster.add_node(num_cpus=args.cpus, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes(timeout=120)
        on = {"engine": "ray", "ray_address": cluster.address}
        start = build_catalog_index(model, work / "two", source=work / "two.parquet", **kw, **on)
        rows.append(("ray start-up", "2 nodes", 2, start.embed_seconds, None))
        remote = build_catalog_index(model, work / "ray", source=work / "cat.parquet", **kw, **on)
        rows.append(("catalog", "2 nodes", n, remote.embed_seconds,
                     diff(local.embeddings, remote.embeddings)))  # fmt: skip
        rb = run_benchmark(encoder, work / "ds", out_dir=work / "br", engine="ray",
                           ray_address=cluster.address, **bench)  # fmt: skip
        rows.append(("benchmark", "2 nodes", m, rb.report["timing"]["embed_s"],
                     cache_diff(work / "bl/embeddings", work / "br/embeddings")))  # fmt: skip
        assert rb.report["full"] == lb.report["full"]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        time.sleep(5)  # its workers exit once their raylet is gone
        shutil.rmtree(session, ignore_errors=True)
    print("| job | engine | images | wall s | images/s | max abs diff vs local |")
    print("|---|---|---:|---:|---:|---:|")
    for job, engine, count, seconds, d in rows:
        gap = "–" if d is None else f"{d:.1e}"
        print(f"| {job} | {engine} | {count} | {seconds:.1f} | {count / seconds:.1f} | {gap} |")
    print(f"load average after: {os.getloadavg()}; work folder {work}")


if __name__ == "__main__":
    main()
