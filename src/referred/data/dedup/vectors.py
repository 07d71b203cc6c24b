"""All pairs of L2-normalised vectors with cosine similarity at least ``min_cosine``.

FAISS range search. Up to ``exact_below`` vectors the search is exact (``IndexFlatIP``: every
pair is compared, in query chunks). Above, candidates come from an IVF index over a PCA
projection to ``PROJECTED`` dimensions (``PCA64,IVF{nlist},Flat``, 256 bytes a vector), by L2
range search: on unit vectors ``cos >= c`` is ``|x - y|^2 <= 2 - 2c``, and an orthonormal
projection never lengthens ``x - y``, so every pair within the threshold stays within the radius
after projection. Candidates are re-scored exactly on the float32 vectors (the reported
similarities are exact); a pair is missed only when its two vectors fall in cells more than
``nprobe`` apart (near-duplicates almost always share their cell; the recall on planted pairs
is measured in docs/data.md). Projecting makes each scanned code 8x cheaper at 512-d and the
cell assignment too. Needs ``faiss-cpu`` (the ``faiss`` extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Above this many vectors the search is approximate (IVF), below it exact.
EXACT_BELOW = 20_000
#: Queries per range-search call.
QUERY_CHUNK = 20_000
#: Dimensions the IVF candidate search projects to.
PROJECTED = 64


@dataclass
class VectorStats:
    """What a search did: exact or IVF (cells, cells probed), candidates re-scored, pairs."""

    method: str = ""
    nlist: int = 0
    nprobe: int = 0
    candidates: int = 0
    pairs: int = 0


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "near-duplicates by embedding need faiss-cpu: pip install 'referred[faiss]'"
        ) from exc
    return faiss


def check_unit_rows(vectors: np.ndarray, tol: float = 1e-3, chunk: int = 100_000) -> np.ndarray:
    """``vectors`` as C-contiguous float32 (n, d), after checking every row has unit norm."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"vectors must be a 2-d (n, d) array, got shape {x.shape}")
    for start in range(0, len(x), chunk):
        norms = np.linalg.norm(x[start : start + chunk], axis=1)
        bad = np.flatnonzero(np.abs(norms - 1) > tol)
        if len(bad):
            row = start + int(bad[0])
            raise ValueError(
                f"vectors must be L2-normalised; row {row} has norm {norms[bad[0]]:.4f} "
                "(normalise them, or give the embeddings parquet referred embed wrote)"
            )
    return x


def embedding_pairs(
    vectors: np.ndarray,
    min_cosine: float,
    *,
    exact_below: int = EXACT_BELOW,
    nlist: int | None = None,
    nprobe: int = 2,
    seed: int = 0,
    stats: VectorStats | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of rows with ``vectors[i] @ vectors[j] >= min_cosine``.

    vectors: (n, d) float32, unit rows. Returns ``(i, j, cosine)``: int64, int64, float32
    arrays sorted by ``(i, j)``; the cosines are exact float32 dot products. ``nlist``: IVF
    cells above ``exact_below`` (default about ``2 sqrt(n)``, a power of two); ``nprobe``:
    cells searched per vector.
    """
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in [-1, 1], got {min_cosine}")
    if nprobe < 1:
        raise ValueError(f"nprobe must be at least 1, got {nprobe}")
    x = check_unit_rows(vectors)
    faiss = _faiss()
    stats = stats if stats is not None else VectorStats()
    n, d = x.shape
    if n < 2:
        return _empty()
    if n < exact_below:
        index, radius = faiss.IndexFlatIP(d), float(min_cosine) - 1e-5
        index.add(x)
        stats.method = "exact"
    else:
        index = _ivf(faiss, x, nlist, nprobe, seed, stats)
        radius = (2.0 - 2.0 * float(min_cosine)) * (1 + 1e-4) + 1e-6  # squared L2, float slack
    found = []
    for start in range(0, n, QUERY_CHUNK):
        q = x[start : start + QUERY_CHUNK]
        lims, _, labels = index.range_search(q, radius)
        rows = start + np.repeat(np.arange(len(q)), np.diff(lims).astype(np.int64))
        later = labels > rows  # each pair once, from its first row; drops the row itself
        i, j = rows[later], labels[later].astype(np.int64)
        stats.candidates += len(i)
        cos = _dots(x, i, j)
        keep = cos >= min_cosine
        found.append((i[keep], j[keep], cos[keep]))
    i, j, cos = (np.concatenate(parts) for parts in zip(*found))
    order = np.lexsort((j, i))
    stats.pairs = len(order)
    return i[order], j[order], cos[order]


def _ivf(faiss, x: np.ndarray, nlist: int | None, nprobe: int, seed: int, stats: VectorStats):
    n, d = x.shape
    nlist = nlist or 2 ** max(4, round(math.log2(2 * math.sqrt(n))))
    pca = f"PCA{PROJECTED}," if d > PROJECTED else ""
    index = faiss.index_factory(d, f"{pca}IVF{nlist},Flat", faiss.METRIC_L2)
    n_train = min(n, 30 * nlist)
    sample = np.sort(np.random.default_rng(seed).choice(n, n_train, replace=False))
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = 10
    ivf.cp.seed = seed
    ivf.cp.min_points_per_centroid = 1  # a 30-per-cell sample is enough to place cells
    index.train(x[sample])
    for start in range(0, n, 200_000):
        index.add(x[start : start + 200_000])
    ivf.nprobe = nprobe
    stats.method, stats.nlist, stats.nprobe = "ivf", nlist, nprobe
    return index


def _dots(x: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
    """Exact float32 ``x[i] . x[j]`` for each pair, in chunks."""
    out = np.empty(len(i), dtype=np.float32)
    for s in range(0, len(i), chunk):
        out[s : s + chunk] = np.einsum("nd,nd->n", x[i[s : s + chunk]], x[j[s : s + chunk]])
    return out


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    return z, z.copy(), np.zeros(0, dtype=np.float32)
