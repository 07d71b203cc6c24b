"""One call from embeddings to the benchmark report: :func:`evaluate`.

It runs one streamed pass (:func:`referred.eval.ranking.sweep_ranks`) that serves the full
distractor sweep, the paper's bootstrap subsets and the LRVSF-Benchmark folds together, then
turns ranks into metrics. The returned dict is what :func:`referred.eval.report.write_report`
writes as ``report.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from referred.eval import metrics
from referred.eval.bootstrap import (
    LRVSF_COUNTS,
    Subsample,
    aggregate,
    lrvsf_subsamples,
    paper_subsamples,
)
from referred.eval.ranking import sweep_ranks
from referred.eval.sources import BlockSource

TIE_RULE = (
    "rank = 1 + #items scoring strictly higher + #items with an equal score placed before the "
    "target (gallery in order, then distractors in metadata order)"
)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one benchmark run that rarely change (metric cut-offs, protocol, speed)."""

    recall_ks: tuple[int, ...] = metrics.RECALL_KS
    cat_ks: tuple[int, ...] = metrics.CAT_KS
    filtered_ks: tuple[int, ...] = metrics.FILTERED_KS
    lrvsf_counts: tuple[int, ...] = LRVSF_COUNTS
    lrvsf_folds: int = 20
    lrvsf_fold_size: int = 1_000
    ddof: int = 1
    norm_tolerance: float = 1e-3  # max |‖x‖ - 1| accepted for queries and targets
    block_size: int = 16_384
    query_chunk: int = 2_048
    matmul: str = "numpy"


def _check_normalised(x: np.ndarray, name: str, tol: float) -> None:
    norms = np.linalg.norm(x, axis=1)
    if np.any(np.abs(norms - 1) > tol):
        raise ValueError(
            f"{name} are not L2-normalised (norms from {norms.min():.4g} to {norms.max():.4g}); "
            "divide each row by its norm (model outputs are not normalised)"
        )


def _subset_metrics(
    subs: Sequence[Subsample], ranks: np.ndarray, franks: np.ndarray, cfg: EvalConfig
) -> dict[str, dict[str, dict[str, float | None]]]:
    rows = [
        (
            s.n_distractors,
            metrics.summarize(
                ranks[j],
                franks[j],
                weights=s.query_weights,
                recall_ks=cfg.recall_ks,
                filtered_ks=cfg.filtered_ks,
            ),
        )
        for j, s in enumerate(subs)
    ]
    return aggregate(rows, ddof=cfg.ddof)


def evaluate(
    queries: np.ndarray,
    targets: np.ndarray,
    target_categories: np.ndarray,
    distractors: BlockSource,
    distractor_counts: Sequence[int],
    *,
    target_index: np.ndarray | None = None,
    bootstrap: Mapping[str, Sequence[np.ndarray]] | None = None,
    product_ids: np.ndarray | None = None,
    distractor_labels: np.ndarray | None = None,
    lrvsf_seed: int | None = 0,
    lrvsf_folds: np.ndarray | None = None,
    k: int = 10,
    model: str | None = None,
    conditioning: str | None = None,
    config: EvalConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Benchmark precomputed embeddings; returns the ``report.json`` dict.

    Args:
        queries: ``(n_q, d)`` L2-normalised conditioned query embeddings.
        targets: ``(n_g, d)`` L2-normalised target (simple image) embeddings: the gallery.
        target_categories: ``(n_g,)`` int category of each target (``LRVSF_CATEGORIES``
            index); filtered recall and Cat@K compare against it.
        distractors: ``((n_b, d), (n_b,) categories)`` blocks in metadata order (see
            :mod:`referred.eval.sources`, :mod:`referred.eval.embeddings`).
        distractor_counts: prefix sizes of the full sweep, e.g. ``(0, 10_000, 100_000)``.
        target_index: ``(n_q,)`` target row of each query; default: query i -> target i.
        bootstrap: loaded ``bootstrap_IDs.pkl`` dict (paper protocol), or ``None``.
        product_ids: ``(n_g,)`` PRODUCT_ID of each target; needed with ``bootstrap``.
        distractor_labels: ``(n_dist,)`` metadata index label of each distractor in stream
            order; ``None``: labels are positions.
        lrvsf_seed: seed of the LRVSF-Benchmark draws (products unless ``lrvsf_folds`` is
            given, and distractors from the first ``max(distractor_counts)``); ``None``
            skips that protocol.
        lrvsf_folds: ``(folds, fold_size)`` gallery rows of each fold's products (the
            official ``bootstrapped_indices.pt``, see
            :func:`referred.eval.bootstrap.load_lrvsf_folds`); ``None``: drawn from the seed.
        k: top-k kept per query (``>= max(config.cat_ks)``).
        model, conditioning: names copied into the report.
        config: cut-offs, protocol sizes and speed settings.
        progress: called with the number of distractors consumed.
    """
    cfg = config or EvalConfig()
    if cfg.cat_ks and k < max(cfg.cat_ks):
        raise ValueError(f"k={k} is smaller than the largest Cat@K cut-off {max(cfg.cat_ks)}")
    q = np.ascontiguousarray(queries, dtype=np.float32)
    g = np.ascontiguousarray(targets, dtype=np.float32)
    _check_normalised(q, "queries", cfg.norm_tolerance)
    _check_normalised(g, "targets", cfg.norm_tolerance)
    tidx = np.arange(q.shape[0]) if target_index is None else np.asarray(target_index)
    counts = sorted({int(n) for n in distractor_counts})

    paper: list[Subsample] = []
    if bootstrap is not None:
        if product_ids is None:
            raise ValueError("the bootstrap protocol needs product_ids (PRODUCT_ID per target)")
        paper = paper_subsamples(bootstrap, np.asarray(product_ids), tidx, distractor_labels)
    folds = None if lrvsf_folds is None else np.asarray(lrvsf_folds, dtype=np.int64)
    lrvsf: list[Subsample] = []
    if lrvsf_seed is not None and counts:
        lrvsf = lrvsf_subsamples(
            g.shape[0],
            tidx,
            counts[-1],
            distractor_counts=cfg.lrvsf_counts,
            n_folds=cfg.lrvsf_folds,
            fold_size=cfg.lrvsf_fold_size,
            seed=lrvsf_seed,
            folds=folds,
        )

    res = sweep_ranks(
        q,
        g,
        np.asarray(target_categories),
        distractors,
        counts,
        target_index=tidx,
        k=k,
        weights=[s.spec for s in paper + lrvsf],
        block_size=cfg.block_size,
        query_chunk=cfg.query_chunk,
        matmul=cfg.matmul,
        progress=progress,
    )
    full = {
        str(n): metrics.summarize(
            res.ranks[i],
            res.filtered_ranks[i],
            res.topk_categories[i],
            res.target_categories,
            recall_ks=cfg.recall_ks,
            cat_ks=cfg.cat_ks,
            filtered_ks=cfg.filtered_ks,
        )
        for i, n in enumerate(res.distractor_counts)
    }
    n_paper = len(paper)
    wr, wfr = res.weighted_ranks, res.weighted_filtered_ranks
    return {
        "model": model,
        "conditioning": conditioning,
        "embedding_dim": int(q.shape[1]),
        "n_queries": int(q.shape[0]),
        "n_targets": int(g.shape[0]),
        "distractor_counts": list(res.distractor_counts),
        "k": k,
        "rank_tie_rule": TIE_RULE,
        "full": full,
        "bootstrap": _subset_metrics(paper, wr[:n_paper], wfr[:n_paper], cfg) if paper else {},
        "lrvsf_benchmark": (
            _subset_metrics(lrvsf, wr[n_paper:], wfr[n_paper:], cfg) if lrvsf else {}
        ),
        "protocol": {
            "bootstrap_subsets": len({s.fold for s in paper}),
            "lrvsf": None
            if lrvsf_seed is None
            else {
                "seed": lrvsf_seed,
                "products": "drawn" if folds is None else "given",
                "folds": cfg.lrvsf_folds if folds is None else folds.shape[0],
                "fold_size": cfg.lrvsf_fold_size if folds is None else folds.shape[1],
                "counts": sorted({s.n_distractors for s in lrvsf}),
                "pool": counts[-1],
            },
            "std_ddof": cfg.ddof,
        },
    }
