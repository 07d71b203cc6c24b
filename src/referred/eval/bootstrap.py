"""Bootstrap protocols of the LRVS-F benchmark, as weight vectors for the streamed ranking.

A bootstrap subset draws products and distractors *with replacement*. Rather than building a
new gallery per subset, each subset becomes weights over the one full stream
(:class:`Subsample`):

* query weights: how many times the query's product was drawn (its result counts that often);
* gallery weights: 1 for every product drawn at least once, 0 otherwise (the subset's gallery
  holds each drawn product's target image once; a product drawn twice does not compete with
  its own copy);
* distractor weights: how many times each distractor was drawn (one drawn twice counts twice
  in every rank it beats).

Two protocols: the paper's fixed subsets from ``bootstrap_IDs.pkl`` (:func:`paper_subsamples`)
and the LRVSF-Benchmark folds (:func:`lrvsf_subsamples`): their products read from the
official ``bootstrapped_indices.pt`` (:func:`load_lrvsf_folds`) or re-drawn from an explicit
seed, their distractors drawn from the seed.
:func:`aggregate` turns per-subset metrics into mean and standard deviation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from referred.eval.ranking import WeightSpec
from referred.eval.sources import Multiplicity

LRVSF_COUNTS: tuple[int, ...] = (10_000, 100_000, 500_000, 1_000_000)
_DIST_KEY = re.compile(r"^dist_(\d+)([kKmM]?)_subsets$")


@dataclass(frozen=True)
class Subsample:
    """One bootstrap subset: ``n_distractors`` is its nominal size (the report key)."""

    n_distractors: int
    fold: int
    query_weights: np.ndarray  # (n_q,) int64
    spec: WeightSpec


def parse_dist_key(key: str) -> int:
    """``"dist_10000_subsets"`` (or ``dist_10K_subsets``) -> 10000."""
    m = _DIST_KEY.match(key)
    if not m:
        raise ValueError(f"not a distractor subset key: {key!r}; expected 'dist_<n>_subsets'")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return int(m.group(1)) * scale


def _lookup(keys: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Index in ``keys`` (unique) of every element of ``wanted``; clear error if absent."""
    keys, wanted = np.asarray(keys), np.asarray(wanted)
    if (keys.dtype.kind in "iu") != (wanted.dtype.kind in "iu"):
        keys, wanted = keys.astype(str), wanted.astype(str)  # e.g. int ids vs string ids
    sorter = np.argsort(keys, kind="stable")
    sk = keys[sorter]
    if sk.size > 1 and np.any(sk[1:] == sk[:-1]):
        raise ValueError(f"{what}: the reference ids are not unique")
    at = np.clip(np.searchsorted(sk, wanted), 0, max(sk.size - 1, 0))
    found = sk.size > 0
    ok = (sk[at] == wanted) if found else np.zeros(wanted.shape, bool)
    if not np.all(ok):
        bad = wanted[~ok]
        raise ValueError(
            f"{what}: {bad.size} of {wanted.size} ids are unknown, e.g. {bad[:5].tolist()}"
        )
    return sorter[at]


def _product_weights(
    gallery_rows: np.ndarray, n_gallery: int, target_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query weights (n_q,), gallery presence (n_g,)) of one draw of gallery rows."""
    mult = np.bincount(gallery_rows, minlength=n_gallery).astype(np.int64)
    return mult[target_index], (mult > 0).astype(np.int64)


def paper_subsamples(
    bootstrap: Mapping[str, Sequence[np.ndarray]],
    product_ids: np.ndarray,
    target_index: np.ndarray,
    distractor_labels: np.ndarray | None = None,
) -> list[Subsample]:
    """The paper protocol: subsets from a loaded ``bootstrap_IDs.pkl`` dict.

    Subset ``i`` pairs ``test_subsets[i]`` with ``dist_<n>_subsets[i]`` for every ``n``; the
    test subsets alone give the 0-distractor entry.

    Args:
        bootstrap: ``{"test_subsets": [N arrays of PRODUCT_ID], "dist_<n>_subsets": [N arrays
            of distractor labels], ...}``.
        product_ids: ``(n_g,)`` PRODUCT_ID of each gallery item (unique).
        target_index: ``(n_q,)`` gallery row of each query's target.
        distractor_labels: ``(n_dist,)`` label of each distractor in stream order (the index
            of the distractor metadata frame); ``None`` means label == position.
    """
    if "test_subsets" not in bootstrap:
        raise ValueError(f"bootstrap dict has no 'test_subsets'; keys: {sorted(bootstrap)}")
    tests = list(bootstrap["test_subsets"])
    n_g = len(product_ids)
    products = []
    for i, ids in enumerate(tests):
        rows = _lookup(product_ids, np.asarray(ids), f"test_subsets[{i}]")
        products.append(_product_weights(rows, n_g, np.asarray(target_index)))
    out = [
        Subsample(0, i, qw, WeightSpec(gw, Multiplicity.empty()))
        for i, (qw, gw) in enumerate(products)
    ]
    for key in sorted((k for k in bootstrap if k != "test_subsets"), key=parse_dist_key):
        n = parse_dist_key(key)
        dists = list(bootstrap[key])
        if len(dists) != len(tests):
            raise ValueError(f"{key} has {len(dists)} subsets but test_subsets has {len(tests)}")
        for i, labels in enumerate(dists):
            labels = np.asarray(labels)
            if distractor_labels is None:
                if labels.dtype.kind not in "iu":
                    raise ValueError(
                        f"{key}[{i}]: labels are {labels.dtype}; pass the "
                        "distractor_labels of the metadata frame to map them"
                    )
                pos = labels.astype(np.int64)
            else:
                pos = _lookup(distractor_labels, labels, f"{key}[{i}]")
            qw, gw = products[i]
            out.append(Subsample(n, i, qw, WeightSpec(gw, Multiplicity.from_samples(pos))))
    return out


def load_lrvsf_folds(path: str | Path) -> np.ndarray:
    """The product folds of LRVSF-Benchmark's ``bootstrapped_indices.pt``.

    The file is a ``torch.save``'d integer tensor of shape ``(folds, fold_size)`` (officially
    ``(20, 1000)`` int32): row ``i`` lists the test products of fold ``i``, by their row in
    the test set's ``products.parquet``, drawn with replacement. It is read with
    ``torch.load(weights_only=True)``, which runs no code from the file. Returns the folds as
    ``(folds, fold_size)`` int64; raises ``ValueError`` naming the file for anything else.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LRVSF fold indices not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a foreign or malicious file
        raise ValueError(
            f"{path}: not a readable bootstrapped_indices.pt (a torch.save'd integer tensor): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{path}: holds a {type(obj).__name__}; expected an integer tensor")
    if obj.dtype.is_floating_point or obj.dtype.is_complex or obj.dtype == torch.bool:
        raise ValueError(f"{path}: tensor of {obj.dtype}; expected integers (product rows)")
    if obj.ndim != 2 or 0 in obj.shape:
        raise ValueError(f"{path}: tensor of shape {tuple(obj.shape)}; expected (folds, size)")
    folds = obj.to(torch.int64).numpy()
    if folds.min() < 0:
        raise ValueError(f"{path}: negative product row {int(folds.min())}")
    return folds


def lrvsf_subsamples(
    n_gallery: int,
    target_index: np.ndarray,
    n_pool: int,
    *,
    distractor_counts: Sequence[int] = LRVSF_COUNTS,
    n_folds: int = 20,
    fold_size: int = 1_000,
    seed: int = 0,
    folds: np.ndarray | None = None,
) -> list[Subsample]:
    """The LRVSF-Benchmark protocol, seeded so that runs repeat exactly.

    Each fold takes ``fold_size`` products (gallery rows, with replacement), then for each
    count ``D`` draws ``D`` distractors with replacement from the first ``n_pool`` of the
    stream. Counts larger than ``n_pool`` are left out. ``folds`` (``(n_folds, fold_size)``
    gallery rows, e.g. :func:`load_lrvsf_folds`) fixes the products of every fold, as the
    official benchmark does; without it they are drawn. Draw order: fold by fold, products
    first (when drawn), then the counts in the given order, all from
    ``np.random.default_rng(seed)``.
    """
    if folds is not None:
        folds = np.asarray(folds, dtype=np.int64)
        if folds.ndim != 2 or folds.size == 0:
            raise ValueError(f"folds must be a non-empty (folds, size) array, got {folds.shape}")
        if folds.min() < 0 or folds.max() >= n_gallery:
            raise ValueError(
                f"fold product rows range over {folds.min()}..{folds.max()} but the benchmark "
                f"has {n_gallery} test products (rows 0..{n_gallery - 1})"
            )
        n_folds, fold_size = folds.shape
    if n_folds < 1 or fold_size < 1:
        raise ValueError(f"n_folds and fold_size must be >= 1, got {n_folds}, {fold_size}")
    rng = np.random.default_rng(seed)
    tidx = np.asarray(target_index)
    out = []
    for fold in range(n_folds):
        rows = folds[fold] if folds is not None else rng.integers(0, n_gallery, fold_size)
        qw, gw = _product_weights(rows, n_gallery, tidx)
        for d in distractor_counts:
            if d > n_pool or d < 1:
                continue
            dist = Multiplicity.from_samples(rng.integers(0, n_pool, d))
            out.append(Subsample(int(d), fold, qw, WeightSpec(gw, dist)))
    return out


def aggregate(
    results: Sequence[tuple[int, Mapping[str, float]]], ddof: int = 1
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Mean and std (``ddof``) of each metric per distractor count.

    Args:
        results: ``(n_distractors, metrics)`` per subset.

    Returns:
        ``{"<n>": {"R@1": {"mean": m, "std": s, "n": N}, ...}}``; ``std`` is ``None`` when
        there are not more than ``ddof`` subsets.
    """
    by_n: dict[int, list[Mapping[str, float]]] = {}
    for n, metrics in results:
        by_n.setdefault(int(n), []).append(metrics)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for n in sorted(by_n):
        rows = by_n[n]
        out[str(n)] = {}
        for name in rows[0]:
            vals = np.array([r[name] for r in rows], dtype=np.float64)
            std = float(np.std(vals, ddof=ddof)) if vals.size > ddof else None
            out[str(n)][name] = {"mean": float(vals.mean()), "std": std, "n": int(vals.size)}
    return out
