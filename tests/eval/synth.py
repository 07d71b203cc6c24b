"""Tiny synthetic benchmark data for the eval tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Bench:
    queries: np.ndarray  # (n_q, d)
    gallery: np.ndarray  # (n_g, d)
    gallery_categories: np.ndarray  # (n_g,)
    target_index: np.ndarray  # (n_q,)
    distractors: np.ndarray  # (n_d, d)
    distractor_categories: np.ndarray  # (n_d,)


def dyadic(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Vectors with entries in {-0.5, -0.25, 0, 0.25, 0.5}: every dot product is exact in
    float32 whatever the summation order, so ties are real and reproducible."""
    return (rng.integers(-2, 3, size=(n, d)) * 0.25).astype(np.float32)


def dyadic_bench(seed: int = 0, n_q: int = 23, n_g: int = 19, n_d: int = 301, d: int = 6) -> Bench:
    """Many exact ties; more queries than gallery items (several queries per target)."""
    rng = np.random.default_rng(seed)
    dist = dyadic(rng, n_d, d)
    dist[5] = dist[7]  # duplicated distractors
    return Bench(
        queries=dyadic(rng, n_q, d),
        gallery=dyadic(rng, n_g, d),
        gallery_categories=rng.integers(0, 3, n_g),
        target_index=rng.integers(0, n_g, n_q),
        distractors=dist,
        distractor_categories=rng.integers(-1, 3, n_d),  # -1: unknown category
    )


def normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def realistic_bench(seed: int = 0, n: int = 40, n_d: int = 500, d: int = 16) -> Bench:
    """L2-normalised; query i is a noisy view of target i, so most ranks are small."""
    rng = np.random.default_rng(seed)
    gallery = normalised(rng.standard_normal((n, d)))
    queries = normalised(gallery + 0.6 * rng.standard_normal((n, d)))
    return Bench(
        queries=queries,
        gallery=gallery,
        gallery_categories=rng.integers(0, 10, n),
        target_index=np.arange(n),
        distractors=normalised(rng.standard_normal((n_d, d))),
        distractor_categories=rng.integers(0, 10, n_d),
    )


def sign_bench(seed: int = 0, n: int = 30, n_d: int = 400, d: int = 16, flip: float = 0.3) -> Bench:
    """L2-normalised *and* exact: entries are ±1/sqrt(d) with d a power of 4, so every dot
    product is a multiple of 1/d computed without rounding (many genuine ties). Query i is
    target i with a share ``flip`` of its signs flipped."""
    rng = np.random.default_rng(seed)
    scale = np.float32(1 / np.sqrt(d))

    def signs(shape):
        return np.where(rng.random(shape) < 0.5, -scale, scale).astype(np.float32)

    gallery = signs((n, d))
    queries = np.where(rng.random((n, d)) < flip, -gallery, gallery).astype(np.float32)
    return Bench(
        queries=queries,
        gallery=gallery,
        gallery_categories=rng.integers(0, 4, n),
        target_index=np.arange(n),
        distractors=signs((n_d, d)),
        distractor_categories=rng.integers(0, 4, n_d),
    )
