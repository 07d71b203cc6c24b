"""scripts/bench_zoom.py's folds, and bench_zoom_views.py's pooled candidates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from bench_zoom import fold_recall


def test_each_fold_ranks_its_own_products_and_the_shared_distractors():
    """Two folds of two. Fold 1: both queries find their product first. Fold 2: query 2 finds
    its product; query 3 prefers the distractor. Products of the other fold are not in a
    fold's gallery: query 1 resembles product 2 (fold 2) more than its own and still ranks
    its own first."""
    products = np.eye(4, 5, dtype=np.float32)
    extra = np.zeros((1, 5), np.float32)
    extra[0, 4] = 1.0  # the distractor
    queries = np.array(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.5, 0.9, 0.0, 0.0],  # fold 1 cannot see product 2
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.4, 0.8],  # the distractor first, its product second
        ],
        np.float32,
    )
    mean, se = fold_recall(queries, products, extra, 2)
    assert mean["R@1"] == 0.75 and mean["R@10"] == 1.0
    assert abs(se["R@1"] - 0.25) < 1e-9 and se["R@10"] == 0.0  # std (1, ½) / √2
    mean, se = fold_recall(queries, products, extra[:0], 4)  # one fold, no distractor
    assert mean["R@1"] == 0.75 and np.isnan(se["R@1"])  # query 1 now sees product 2


def test_the_views_benchmark_pools_the_close_ups_a_candidate_names():
    from bench_zoom_views import pooled

    from referred.zoom.views import Views

    v = {
        ("located", 0.1, False): np.array([[2.0, 0.0]], np.float32),
        ("located", 0.1, True): np.array([[0.0, 1.0]], np.float32),
        ("located", 0.25, False): np.array([[0.0, -3.0]], np.float32),
        ("located", 0.25, True): np.array([[1.0, 0.0]], np.float32),
    }
    assert np.allclose(pooled(v, "located", Views((0.1,))), [[1.0, 0.0]])
    assert np.allclose(pooled(v, "located", Views((0.1,), flip=True)), [[2**-0.5, 2**-0.5]])
    assert np.allclose(pooled(v, "located", Views((0.1, 0.25))), [[2**-0.5, -(2**-0.5)]])
    # all four: (1 + 0 + 0 + 1, 0 + 1 - 1 + 0) / 4 → (1, 0)
    assert np.allclose(pooled(v, "located", Views((0.1, 0.25), flip=True)), [[1.0, 0.0]])
