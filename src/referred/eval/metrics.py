"""Retrieval metrics of the LRVS-F benchmark, as pure numpy functions.

Everything here works on per-query *ranks* and *top-k categories*, however they were computed
(the streamed ranking in :mod:`referred.eval.ranking`, or the full-matrix reference
:func:`ranks_from_scores` used by the tests).

Rank and tie rule
-----------------
Items are the gallery (the test products' target images, in order) followed by the distractors
(in metadata order); an item's *position* is its index in that concatenation. The rank of
query ``q``'s target at position ``p`` with score ``t`` is::

    rank = 1 + #{items j : s_j > t} + #{items j : s_j == t and j < p}

so an item with the same score as the target ranks before it only when it comes earlier in the
order. Distractors always come after the gallery, hence a distractor must score strictly higher
to push the target down. Scores are compared exactly as computed (float32); NaN never beats.
Top-k lists use the same order: score descending, then position ascending.

Weights
-------
Bootstrap subsets are drawn with replacement, so a query (product) or an item may occur several
times. Weights are non-negative integer multiplicities; every weighted metric equals the
unweighted metric on the data with each row repeated ``weight`` times (this is what the tests
check).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_KS: tuple[int, ...] = (1, 5, 10, 20, 50)
CAT_KS: tuple[int, ...] = (1, 5, 10)
FILTERED_KS: tuple[int, ...] = (1, 5, 10)


def check_weights(weights: np.ndarray | None, n: int, name: str = "weights") -> np.ndarray:
    """Validate integer multiplicities of shape ``(n,)``; ``None`` means all ones.

    Returns an int64 array. Raises ``ValueError`` for a wrong shape, negative or non-integer
    values, or an all-zero vector.
    """
    if weights is None:
        return np.ones(n, dtype=np.int64)
    w = np.asarray(weights)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    if w.dtype.kind == "f":
        if not np.all(np.isfinite(w)) or np.any(w != np.round(w)):
            raise ValueError(f"{name} must be integer multiplicities (duplicate counts)")
    elif w.dtype.kind not in "iub":
        raise ValueError(f"{name} must be integer multiplicities, got dtype {w.dtype}")
    w = w.astype(np.int64)
    if np.any(w < 0):
        raise ValueError(f"{name} must be non-negative, found {int(w.min())}")
    if w.sum() == 0:
        raise ValueError(f"{name} are all zero: no query to average over")
    return w


def _check_ranks(ranks: np.ndarray) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-D (n_queries,), got shape {r.shape}")
    if r.size == 0:
        raise ValueError("ranks is empty: no query to evaluate")
    if np.any(r < 1):
        raise ValueError(f"ranks are 1-based; found {r.min()}")
    return r


def recall_at_k(ranks: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """R@K: (weighted) share of queries whose target rank is ``<= k``.

    Args:
        ranks: ``(n_q,)`` 1-based ranks.
        k: cut-off, ``>= 1``.
        weights: ``(n_q,)`` integer multiplicities, or ``None``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    r = _check_ranks(ranks)
    w = check_weights(weights, r.size)
    return float(np.sum(w * (r <= k)) / np.sum(w))


def category_precision_at_k(
    topk_categories: np.ndarray,
    target_categories: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
) -> float:
    """Cat@K: (weighted) mean share of the top-K results whose category is the target's.

    Args:
        topk_categories: ``(n_q, >= k)`` categories of each query's results, best first;
            ``-1`` marks an empty slot (fewer than K items exist), which never matches.
        target_categories: ``(n_q,)`` category of each query's target (non-negative).
        k: cut-off, ``1 <= k <= topk_categories.shape[1]``. The denominator is always K.
        weights: ``(n_q,)`` integer multiplicities, or ``None``.
    """
    cats = np.asarray(topk_categories)
    tcat = np.asarray(target_categories)
    if cats.ndim != 2 or tcat.shape != (cats.shape[0],):
        raise ValueError(
            f"expected topk_categories (n_q, k) and target_categories (n_q,), got "
            f"{cats.shape} and {tcat.shape}"
        )
    if not 1 <= k <= cats.shape[1]:
        raise ValueError(f"k={k} outside 1..{cats.shape[1]} (the top-k lists kept)")
    w = check_weights(weights, cats.shape[0])
    share = np.mean(cats[:, :k] == tcat[:, None], axis=1)  # (n_q,)
    return float(np.sum(w * share) / np.sum(w))


def weighted_median(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Median of ``values`` with each value repeated ``weights`` times (``np.median`` rule:
    the mean of the two middle values when the total weight is even)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {v.shape}")
    w = check_weights(weights, v.size)
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    total = int(cum[-1])
    # 0-based positions of the middle element(s) in the expanded sorted array.
    lo, hi = (total - 1) // 2, total // 2
    v_lo = v[np.searchsorted(cum, lo, side="right")]
    v_hi = v[np.searchsorted(cum, hi, side="right")]
    return float((v_lo + v_hi) / 2)


def median_rank(ranks: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) median of the 1-based target ranks."""
    return weighted_median(_check_ranks(ranks), weights)


def summarize(
    ranks: np.ndarray,
    filtered_ranks: np.ndarray,
    topk_categories: np.ndarray | None = None,
    target_categories: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    recall_ks: Sequence[int] = RECALL_KS,
    cat_ks: Sequence[int] = CAT_KS,
    filtered_ks: Sequence[int] = FILTERED_KS,
) -> dict[str, float]:
    """All benchmark metrics of one evaluation as a flat dict.

    Keys: ``R@K`` for ``recall_ks``, ``Cat@K`` for ``cat_ks`` (only when ``topk_categories``
    is given), ``filtered_R@K`` for ``filtered_ks``, and ``median_rank``. Recall and Cat values
    are fractions in [0, 1]; ``median_rank`` is a rank.

    Args:
        ranks: ``(n_q,)`` target ranks among gallery + distractors.
        filtered_ranks: ``(n_q,)`` ranks among the items of the target's category only.
        topk_categories: ``(n_q, k)`` result categories, best first, or ``None``.
        target_categories: ``(n_q,)``; required with ``topk_categories``.
        weights: ``(n_q,)`` integer query multiplicities, or ``None``.
    """
    out: dict[str, float] = {}
    for k in recall_ks:
        out[f"R@{k}"] = recall_at_k(ranks, k, weights)
    if topk_categories is not None:
        if target_categories is None:
            raise ValueError("target_categories is required to compute Cat@K")
        for k in cat_ks:
            out[f"Cat@{k}"] = category_precision_at_k(
                topk_categories, target_categories, k, weights
            )
    for k in filtered_ks:
        out[f"filtered_R@{k}"] = recall_at_k(filtered_ranks, k, weights)
    out["median_rank"] = median_rank(ranks, weights)
    return out


def ranks_from_scores(
    scores: np.ndarray,
    target_positions: np.ndarray,
    item_mask: np.ndarray | None = None,
    item_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Reference ranks from a full score matrix, with the module's tie rule.

    Meant for small data (tests, oracles): it materialises ``(n_q, n_items)`` masks.

    Args:
        scores: ``(n_q, n_items)`` similarity of each query to each item, items in order.
        target_positions: ``(n_q,)`` column of each query's target.
        item_mask: ``(n_q, n_items)`` or ``(n_items,)`` bool, items that take part (e.g. same
            category as the target for filtered recall); ``None`` means all.
        item_weights: ``(n_items,)`` non-negative integer multiplicities; ``None`` means 1.

    Returns:
        ``(n_q,)`` int64 1-based ranks. The target itself is never counted.
    """
    s = np.asarray(scores)
    n_q, n_items = s.shape
    p = np.asarray(target_positions, dtype=np.int64)
    if p.shape != (n_q,) or np.any((p < 0) | (p >= n_items)):
        raise ValueError(f"target_positions must be (n_q,) in [0, {n_items})")
    t = s[np.arange(n_q), p][:, None]  # (n_q, 1)
    cols = np.arange(n_items)[None, :]
    beats = (s > t) | ((s == t) & (cols < p[:, None]))  # (n_q, n_items)
    if item_mask is not None:
        beats &= np.broadcast_to(np.asarray(item_mask, dtype=bool), s.shape)
    if item_weights is None:
        return 1 + beats.sum(axis=1, dtype=np.int64)
    w = np.asarray(item_weights, dtype=np.int64)
    if w.shape != (n_items,) or np.any(w < 0):
        raise ValueError(f"item_weights must be non-negative with shape ({n_items},)")
    return 1 + (beats.astype(np.int64) @ w)


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference top-k positions ``(n_q, min(k, n_items))``: score descending, then position."""
    s = np.asarray(scores)
    order = np.argsort(-s, axis=1, kind="stable")  # stable: equal scores keep position order
    return order[:, :k]
