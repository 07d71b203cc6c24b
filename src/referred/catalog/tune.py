"""Recall of an approximate index against exact search, and tuning it to a target recall.

Queries are held-out vectors when given (embedded scenes: what the index will be asked), else
a seeded sample of the catalog's products, each query's own product then left out of both its
exact and its approximate top-k (it would be a free hit): recall@k is the share of each
query's k true nearest products that the index returns. Exact neighbours come from a streamed
brute force, computed once per tuning.

:func:`tune_to_recall` raises the index's search-time knob — ``ef_search`` for HNSW,
``nprobe`` for IVF (at most its ``nlist``) — along a doubling ladder until recall@k reaches
the target, measuring one-query latency at each step (the curve a user needs to choose), and
leaves the index at the first value that reaches it (or the last tried, ``reached=False``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from referred.index.vectors import VectorStore, exact_search

#: Values tried for the knob, in order (IVF: those below nlist, then nlist itself).
LADDER = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class TunePoint:
    value: int
    recall: float
    ms_per_query: float  # median of single-query searches


@dataclass(frozen=True)
class Tuning:
    knob: str
    value: int
    target: float
    reached: bool
    queries: int
    k: int
    curve: list[TunePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "knob": self.knob,
            "value": self.value,
            "target": self.target,
            "reached": self.reached,
            "queries": self.queries,
            "k": self.k,
            "curve": [vars(p) for p in self.curve],
        }


def sample_rows(n: int, n_queries: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, min(n_queries, n), replace=False))


def exact_neighbours(ids: list[str], vectors: np.ndarray, rows: np.ndarray, k: int) -> list:
    """For each query row, the ids of its k nearest other catalog products (exact)."""
    return exact_for(ids, vectors, vectors[rows], k, [ids[r] for r in rows])


def exact_for(ids: list[str], vectors: np.ndarray, queries: np.ndarray, k: int, own=None) -> list:
    """For each query vector, the ids of its k nearest catalog products (exact), leaving out
    ``own[q]`` (the query's own product, when it is one) if given."""
    _, found = exact_search(VectorStore(vectors.shape[1], base=vectors), queries, k + 1)
    id_arr = np.asarray(ids, dtype=object)
    return [
        [i for i in id_arr[found[q][found[q] >= 0]] if own is None or i != own[q]][:k]
        for q in range(len(queries))
    ]


def recall_of(index: Any, ids: list[str], vectors: np.ndarray, rows, truth, k: int) -> float:
    """Recall@k of ``index`` for the catalog query ``rows`` against their exact ``truth``."""
    return recall_for(index, vectors[rows], truth, k, [ids[r] for r in rows])


def recall_for(index: Any, queries: np.ndarray, truth: list, k: int, own=None) -> float:
    """Recall@k of ``index`` for query vectors against their exact ``truth`` (``own``: the
    query's own product, left out of what the index returns, as of the truth)."""
    found = index.search(queries, k + 1).ids  # (q, k + 1)
    hits = []
    for q in range(len(queries)):
        got = [i for i in found[q] if i and (own is None or i != own[q])][:k]
        if truth[q]:
            hits.append(len(set(truth[q]) & set(got)) / len(truth[q]))
    return float(np.mean(hits)) if hits else 1.0


def one_query_ms(index: Any, queries: np.ndarray, k: int) -> float:
    """Median milliseconds of ``index.search`` on one query at a time."""
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], k)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def search_knob(index: Any) -> tuple[str, list[int]]:
    """The knob an index is tuned by and the values to try; ValueError if it has none."""
    ivf = getattr(index, "_ivf", None)
    options = index.options() if hasattr(index, "options") else {}
    if ivf is not None and "nprobe" in options:
        nlist = int(ivf.nlist)
        return "nprobe", [v for v in (1, 2, 4, *LADDER) if v < nlist] + [nlist]
    if "ef_search" in options and "HNSW" in str(options.get("factory", "")):
        return "ef_search", list(LADDER)
    raise ValueError(
        f"{getattr(index, 'spec', index)} has no search-time knob to tune "
        "(tuning covers faiss HNSW (ef_search) and IVF (nprobe) specs)"
    )


def tune_to_recall(
    index: Any,
    ids: list[str],
    vectors: np.ndarray,
    target: float,
    *,
    n_queries: int = 1000,
    k: int = 10,
    seed: int = 0,
    latency_queries: int = 100,
    queries: np.ndarray | None = None,
) -> Tuning:
    """Set the index's knob to the smallest ladder value whose recall@k reaches ``target``.

    ``queries`` (optional (q, D) vectors): held-out queries to tune on, e.g. embedded scenes
    with their conditions — what the index will really be asked. Without them a sample of the
    catalog's own vectors queries it, which sit on the index's graph and lists and read a
    higher recall than off-catalog queries at the same setting (docs/benchmarks.md)."""
    if not 0 < target <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target}")
    knob, values = search_knob(index)
    if queries is None:
        rows = sample_rows(len(ids), n_queries, seed)
        q, own = vectors[rows], [ids[r] for r in rows]
    else:
        q = np.asarray(queries, np.float32)[sample_rows(len(queries), n_queries, seed)]
        own = None
    truth = exact_for(ids, vectors, q, k, own)
    curve: list[TunePoint] = []
    for value in values:
        index.configure(**{knob: value})
        recall = recall_for(index, q, truth, k, own)
        curve.append(TunePoint(value, recall, one_query_ms(index, q[:latency_queries], k)))
        if recall >= target:
            return Tuning(knob, value, target, True, len(q), k, curve)
    return Tuning(knob, values[-1], target, False, len(q), k, curve)
