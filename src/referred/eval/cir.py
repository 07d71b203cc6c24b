"""The FashionIQ metric of composed retrieval, pure numpy: ranks, R@K, bootstrap, report.

Protocol (FashionIQ, as CLIP4Cir and the LRVS-F paper's appendix B.5 report it): for each
triplet of a category, the composed query ranks that split's images of the category
(``image_splits``) with the **candidate left out**; R@K is the share of triplets whose
target is among the first K; a method's score is R@10 and R@50 per category and their
average over categories. Ties follow :mod:`referred.eval.metrics`: an image scoring the same
as the target ranks before it only when it comes earlier in the gallery.

Spread: each category's triplets are redrawn with replacement ``samples`` times (seeded);
the std of R@K over the draws is reported beside it, and the average's std is that of the
per-draw average over categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from referred.eval.metrics import ranks_from_scores, recall_at_k

CIR_KS: tuple[int, ...] = (10, 50)
PROTOCOL = (
    "FashionIQ: per category, each triplet's composed query ranks the split's images of the "
    "category (image_splits), the candidate left out; R@10 and R@50 per category and their "
    "average over categories"
)


def cir_ranks(
    queries: np.ndarray,
    gallery: np.ndarray,
    targets: np.ndarray,
    candidates: np.ndarray,
    block: int = 1024,
) -> np.ndarray:
    """1-based rank of each query's target among the gallery without its candidate.

    Args:
        queries: ``(n_q, D)`` composed query vectors.
        gallery: ``(n_g, D)`` image vectors of the category's split.
        targets: ``(n_q,)`` gallery row of each target.
        candidates: ``(n_q,)`` gallery row of each candidate (left out), or -1 for none.
        block: queries scored at a time (memory ``block × n_g``).

    Returns:
        ``(n_q,)`` int64 ranks.
    """
    q, g = np.asarray(queries, np.float32), np.asarray(gallery, np.float32)
    t, c = np.asarray(targets, np.int64), np.asarray(candidates, np.int64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"queries (n_q, D) and gallery (n_g, D) expected, got {q.shape}, {g.shape}"
        )
    if t.shape != (len(q),) or c.shape != (len(q),):
        raise ValueError(f"targets and candidates must be ({len(q)},), got {t.shape}, {c.shape}")
    if np.any((t < 0) | (t >= len(g))) or np.any((c < -1) | (c >= len(g))):
        raise ValueError(f"target / candidate rows must index the gallery of {len(g)} images")
    out = np.empty(len(q), np.int64)
    for start in range(0, len(q), block):
        rows = slice(start, start + block)
        scores = q[rows] @ g.T  # (b, n_g)
        mask = np.ones(scores.shape, bool)
        has = c[rows] >= 0
        mask[np.flatnonzero(has), c[rows][has]] = False  # the candidate never competes
        out[rows] = ranks_from_scores(scores, t[rows], item_mask=mask)
    return out


def recalls(
    ranks: np.ndarray, ks: Sequence[int] = CIR_KS, weights: np.ndarray | None = None
) -> dict[str, float]:
    """``{"R@K": share of ranks <= K}`` for each K."""
    return {f"R@{k}": recall_at_k(ranks, k, weights) for k in ks}


def bootstrap_std(
    ranks: Mapping[str, np.ndarray], ks: Sequence[int] = CIR_KS, samples: int = 200, seed: int = 0
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Std of R@K over ``samples`` redraws of each category's triplets, and of their average
    over categories: ``({category: {"R@K": std}}, {"R@K": std})``. Draw order: draw by draw,
    categories in the given order, from ``np.random.default_rng(seed)``."""
    if samples < 2:
        raise ValueError(f"samples must be >= 2 for a standard deviation, got {samples}")
    rng = np.random.default_rng(seed)
    per = {c: {f"R@{k}": np.empty(samples) for k in ks} for c in ranks}
    for i in range(samples):
        for c, r in ranks.items():
            w = np.bincount(rng.integers(0, len(r), len(r)), minlength=len(r))
            for name, value in recalls(r, ks, w).items():
                per[c][name][i] = value
    cats = {c: {m: float(v.std(ddof=1)) for m, v in d.items()} for c, d in per.items()}
    avg = {
        f"R@{k}": float(np.mean([per[c][f"R@{k}"] for c in ranks], axis=0).std(ddof=1)) for k in ks
    }
    return cats, avg


def method_scores(
    ranks: Mapping[str, np.ndarray], ks: Sequence[int] = CIR_KS, samples: int = 200, seed: int = 0
) -> dict[str, Any]:
    """One method's section: ``{"categories": {c: {"R@K", "R@K_std", "queries"}}, "average":
    {"R@K", "R@K_std", "mean", "mean_std"}}``; "mean" is the mean of the average R@Ks."""
    if not ranks:
        raise ValueError("no category to score")
    std_c, std_a = bootstrap_std(ranks, ks, samples, seed) if samples else ({}, {})
    cats: dict[str, dict[str, float]] = {}
    for c, r in ranks.items():
        cell: dict[str, float] = dict(recalls(r, ks))
        for name in list(cell):
            if c in std_c:
                cell[f"{name}_std"] = std_c[c][name]
        cell["queries"] = len(r)
        cats[c] = cell
    avg: dict[str, float] = {
        f"R@{k}": float(np.mean([cats[c][f"R@{k}"] for c in cats])) for k in ks
    }
    for name in list(avg):
        if std_a:
            avg[f"{name}_std"] = std_a[name]
    avg["mean"] = float(np.mean([avg[f"R@{k}"] for k in ks]))
    return {"categories": cats, "average": avg}


def cir_report(
    ranks: Mapping[str, Mapping[str, np.ndarray]],
    primary: str,
    ks: Sequence[int] = CIR_KS,
    samples: int = 200,
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """The report of several methods (``{method: {category: ranks}}``): the ``primary``
    method's ``categories`` and ``average`` at the top (the issue's shape), every method
    under ``methods``, the protocol and the bootstrap settings, plus ``extra`` keys."""
    if primary not in ranks:
        raise ValueError(f"primary method {primary!r} not among {list(ranks)}")
    methods = {m: method_scores(r, ks, samples, seed) for m, r in ranks.items()}
    return {
        "task": "cir",
        "protocol": PROTOCOL,
        "method": primary,
        "categories": methods[primary]["categories"],
        "average": methods[primary]["average"],
        "methods": methods,
        "bootstrap": {"samples": samples, "seed": seed},
        **extra,
    }


def _cell(d: Mapping[str, float], name: str) -> str:
    std = d.get(f"{name}_std")
    value = f"{100 * d[name]:.1f}"
    return f"{value} ± {100 * std:.1f}" if std is not None else value


def cir_table(report: Mapping[str, Any]) -> str:
    """A Markdown table in the paper's shape (percentages): one row per method; per category
    R@10 and R@50, then the averages and their mean."""
    methods = report["methods"]
    cats = list(report["categories"])
    ks = [name for name in next(iter(report["categories"].values())) if name.startswith("R@")]
    ks = [k for k in ks if not k.endswith("_std")]
    head = ["Method", *(f"{c} {k}" for c in cats for k in ks), *(f"Avg {k}" for k in ks), "Avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, sec in methods.items():
        cells = [_cell(sec["categories"][c], k) for c in cats for k in ks]
        cells += [_cell(sec["average"], k) for k in ks]
        cells.append(f"{100 * sec['average']['mean']:.1f}")
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return "\n".join(lines)
