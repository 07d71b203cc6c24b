"""Benchmark: the exact streamed sweep against one FAISS IndexFlatIP top-100 search.

Data: ``--queries`` L2-normalised queries (noisy views of their targets, so ranks look like a
real model's), as many targets, and ``--distractors`` x ``--dim`` random normalised float32
distractors, generated in chunks into ``WORKDIR/distractors.npy`` (reused when present).

Each measurement runs in a fresh subprocess (its own thread settings, its own peak RSS from
``getrusage``); repetitions are interleaved across methods so that a busy machine penalises all
of them alike. Methods:

* ``sweep-<numpy|torch>-t<N>``: :func:`referred.eval.ranking.sweep_ranks` reading the .npy
  with plain file reads, distractor counts 0/10K/100K/1M/2M, filtered counts, top-10;
* ``sweep-boot-t2``: the same plus 110 bootstrap subsets (10 paper subsets x 10K/100K/1M and
  20 LRVSF folds x 10K/100K/500K/1M);
* ``sweep-mmap-t2``: the sweep over ``np.load(mmap_mode="r")`` instead of file reads;
* ``faiss-t<N>``: IndexFlatIP over the distractors, one ``search(queries, 100)`` (the index
  build is timed apart).

Usage::

    .venv/bin/python scripts/bench_ranking.py --workdir /tmp/referred_bench --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COUNTS = (0, 10_000, 100_000, 1_000_000, 2_000_000)
METHODS = (
    "faiss-t2", "sweep-numpy-t2", "sweep-torch-t2",
    "faiss-t1", "sweep-numpy-t1", "sweep-torch-t1",
)  # fmt: skip
EXTRA = ("sweep-boot-t2", "sweep-mmap-t2")


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def generate(work: Path, n_q: int, n_d: int, d: int, seed: int = 0) -> None:
    """Write queries/targets/categories and the distractors (in 65,536-row chunks)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "distractors.npy"
    rng = np.random.default_rng(seed)
    targets = normalise(rng.standard_normal((n_q, d), dtype=np.float32))
    noise = normalise(rng.standard_normal((n_q, d), dtype=np.float32))
    noise = normalise(noise - (noise * targets).sum(1, keepdims=True) * targets)
    cos = rng.uniform(0.1, 0.5, (n_q, 1)).astype(np.float32)  # query-target cosine
    np.save(work / "queries.npy", normalise(cos * targets + np.sqrt(1 - cos**2) * noise))
    np.save(work / "targets.npy", targets)
    np.save(work / "target_categories.npy", rng.integers(0, 10, n_q).astype(np.int8))
    np.save(work / "distractor_categories.npy", rng.integers(0, 10, n_d).astype(np.int8))
    if path.exists() and np.load(path, mmap_mode="r").shape == (n_d, d):
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_d, d))
    for start in range(0, n_d, 65_536):
        stop = min(start + 65_536, n_d)
        out[start:stop] = normalise(rng.standard_normal((stop - start, d), dtype=np.float32))
    out.flush()
    del out


def bootstrap_specs(n_g: int, n_d: int):
    from referred.eval.bootstrap import lrvsf_subsamples, paper_subsamples

    rng = np.random.default_rng(1)
    pids = np.arange(n_g)
    boot = {"test_subsets": [rng.choice(pids, 1000) for _ in range(10)]}
    for n in (10_000, 100_000, 1_000_000):
        boot[f"dist_{n}_subsets"] = [rng.integers(0, n_d, n) for _ in range(10)]
    subs = paper_subsamples(boot, pids, pids) + lrvsf_subsamples(n_g, pids, n_d, seed=0)
    return [s.spec for s in subs]


def child(method: str, work: Path) -> dict:
    """Run one measurement in this process; returns seconds, peak RSS and a checksum."""
    threads = int(method.rsplit("-t", 1)[1])
    q = np.load(work / "queries.npy")
    info: dict = {"method": method, "threads": threads}
    if method.startswith("faiss"):
        import faiss

        from referred.eval.sources import npy_blocks

        faiss.omp_set_num_threads(threads)
        dcat = np.load(work / "distractor_categories.npy")
        t0 = time.perf_counter()
        index = faiss.IndexFlatIP(q.shape[1])
        for emb, _ in npy_blocks(work / "distractors.npy", dcat, 262_144):
            index.add(emb)
        info["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ids = index.search(q, 100)
        info["seconds"] = time.perf_counter() - t0
        np.save(work / "faiss_ids.npy", ids)
    else:
        from referred.eval.ranking import sweep_ranks
        from referred.eval.sources import array_blocks, npy_blocks

        kind = method.split("-")[1]
        matmul = "torch" if kind == "torch" else "numpy"
        if matmul == "torch":
            import torch

            torch.set_num_threads(threads)
        g = np.load(work / "targets.npy")
        gcat = np.load(work / "target_categories.npy")
        dcat = np.load(work / "distractor_categories.npy")
        weights = bootstrap_specs(len(g), len(dcat)) if kind == "boot" else []
        t0 = time.perf_counter()
        if kind == "mmap":
            source = array_blocks(np.load(work / "distractors.npy", mmap_mode="r"), dcat, 65_536)
        else:
            source = npy_blocks(work / "distractors.npy", dcat, 65_536)
        counts = [n for n in COUNTS if n < len(dcat)] + [len(dcat)]  # always the full set
        res = sweep_ranks(q, g, gcat, source, counts, k=10, weights=weights, matmul=matmul)
        info["seconds"] = time.perf_counter() - t0
        info["R@1"] = {str(n): float(np.mean(res.ranks[i] == 1)) for i, n in enumerate(counts)}
        info["n_weights"] = len(weights)
        np.save(work / "sweep_top.npy", res.topk_positions[-1])
    info["maxrss_mb"] = peak_rss_mb()
    return info


def peak_rss_mb() -> float:
    """Peak resident memory of this process image, in MiB.

    ``VmHWM`` belongs to the current address space; ``getrusage``'s ``ru_maxrss`` would also
    carry the parent's peak across fork + exec on Linux (the parent maps the 4 GB file).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(method: str, work: Path) -> dict:
    threads = method.rsplit("-t", 1)[1]
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)  # fmt: skip
    cmd = [sys.executable, __file__, "--child", method, "--workdir", str(work)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def agreement(work: Path, n_g: int) -> float:
    """Share of queries whose distractor entries in the sweep's top-10 at the largest count
    are exactly the first entries of FAISS's top-100."""
    top, ids = np.load(work / "sweep_top.npy"), np.load(work / "faiss_ids.npy")
    ok = 0
    for row, frow in zip(top, ids):
        dist = row[row >= n_g] - n_g
        ok += bool(np.array_equal(dist, frow[: dist.size]))
    return ok / len(top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/referred_bench"))
    p.add_argument("--queries", type=int, default=2_000)
    p.add_argument("--distractors", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--extra", nargs="*", default=list(EXTRA), help="run once each")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.workdir)), flush=True)
        return
    t0 = time.perf_counter()
    generate(args.workdir, args.queries, args.distractors, args.dim)
    print(f"data ready in {time.perf_counter() - t0:.1f} s", flush=True)
    runs: dict[str, list[dict]] = {m: [] for m in [*args.methods, *args.extra]}
    for rep in range(args.reps):
        for m in args.methods + (args.extra if rep == 0 else []):
            r = run_child(m, args.workdir)
            runs[m].append(r)
            print(f"rep {rep} {m}: {r['seconds']:.1f} s, peak RSS {r['maxrss_mb']:.0f} MB"
                  + (f", R@1 {r['R@1']}" if "R@1" in r else ""), flush=True)  # fmt: skip
    if any(m.startswith("faiss") for m in runs) and any(m.startswith("sweep") for m in runs):
        share = agreement(args.workdir, args.queries)
        print(f"top-k agreement with FAISS (distractor entries of the top-10): {share:.4f}")
    faiss_best = min(
        statistics.median(r["seconds"] for r in runs[m]) for m in runs if m.startswith("faiss")
    )
    print("\n| method | threads | runs | median s | vs best FAISS | peak RSS GB |")
    print("|---|---|---|---|---|---|")
    for m, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        print(f"| {m} | {rs[0]['threads']} | {len(rs)} | {med:.1f} | {med / faiss_best:.2f}x | "
              f"{max(r['maxrss_mb'] for r in rs) / 1024:.2f} |")  # fmt: skip
    (args.workdir / "results.json").write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
