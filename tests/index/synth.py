"""Clustered unit vectors like real embeddings, and brute-force oracles for the index tests."""

from __future__ import annotations

import numpy as np

CATEGORIES = ("Bags", "Feet", "Hands", "Head", "Lower Body")


def structured(n: int, dim: int, seed: int = 0, latent: int = 12, noise: float = 0.4) -> np.ndarray:
    """(n, dim) float32 unit rows: a ``latent``-dim Gaussian projected to ``dim`` plus noise.

    The projection is fixed (seed 1234) so calls with different ``seed`` share one distribution.
    """
    proj = np.random.default_rng(1234).standard_normal((latent, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent)).astype(np.float32)
    x = z @ proj / np.sqrt(latent) + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def catalog(n: int, seed: int = 0) -> tuple[list[str], list[dict]]:
    """Ids ``p000000``… and metadata: category (5 values), title, image, a 1% ``rare`` flag."""
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, len(CATEGORIES), n)
    ids = [f"p{i:06d}" for i in range(n)]
    meta = [
        {
            "category": CATEGORIES[c],
            "title": f"item {i}",
            "image": f"https://img.example/{i}.jpg",
            "rare": i % 100 == 7,
        }
        for i, c in enumerate(cats)
    ]
    return ids, meta


def brute_force(
    x: np.ndarray, ids: list[str], q: np.ndarray, k: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by a full numpy sort: scores (nq, k), ids (nq, k) padded with -inf / ''."""
    s = q @ x.T  # (nq, n)
    if keep is not None:
        s[:, ~keep] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(s, order, axis=1)
    out_ids = np.asarray(ids, dtype=object)[order]
    out_ids[np.isneginf(scores)] = ""
    pad = k - scores.shape[1]
    if pad > 0:
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values="")
    return scores, out_ids


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each truth row's non-empty ids that appear in the found row."""
    hits = [len(set(f) & set(t) - {""}) / max(1, len(set(t) - {""})) for f, t in zip(found, truth)]
    return float(np.mean(hits))
