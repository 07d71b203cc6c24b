"""Pure functions for scoring and calibrating probabilities: ROC AUC, ECE, Platt scaling."""

from __future__ import annotations

import numpy as np


def _binary(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (or booleans)")
    return y.astype(np.float64)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (the Mann-Whitney statistic on average ranks)."""
    y, s = _binary(labels), np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels for {s.size} scores")
    pos, neg = int(y.sum()), int(y.size - y.sum())
    if pos == 0 or neg == 0:
        raise ValueError("AUC needs both positive and negative labels")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.arange(1, s.size + 1)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # tied scores share their average rank
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width probability bins: the mean, weighted by the share of
    samples in each bin, of |observed frequency - mean predicted probability|."""
    y, p = _binary(labels), np.asarray(probs, dtype=np.float64).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"{y.size} labels for {p.size} probabilities")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    which = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, y, bins) - np.bincount(which, p, bins))  # per-bin sums
    return float(gap.sum() / y.size) if n.sum() else 0.0


def fit_platt(logits: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """(a, b) minimising the log loss of ``sigmoid(a · logit + b)`` (Newton's method on the
    two parameters, a tiny ridge for separable data). Calibrates a classifier's logits on
    held-out data."""
    y, x = _binary(labels), np.asarray(logits, dtype=np.float64).ravel()
    if y.shape != x.shape or y.size == 0:
        raise ValueError(f"{y.size} labels for {x.size} logits")
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = p * (1 - p)
        grad = np.array([((p - y) * x).sum() + 1e-6 * a, (p - y).sum()])
        hess = np.array([[(w * x * x).sum() + 1e-6, (w * x).sum()], [(w * x).sum(), w.sum()]])
        hess += 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)
