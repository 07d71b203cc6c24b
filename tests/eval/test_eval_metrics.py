"""Metrics on hand-computed cases (ties included) and weighted == duplicated rows."""

from __future__ import annotations

import numpy as np
import pytest

from referred.eval import metrics as m


def test_tie_rule_hand_computed():
    # items: g0 g1 g2 | d0 d1  (gallery first, then distractors)
    scores = np.array(
        [
            [0.5, 0.5, 0.2, 0.5, 0.9],  # target g1: g0 ties earlier (counts), d0 ties later (no)
            [0.1, 0.3, 0.3, 0.3, 0.0],  # target g2: g1 ties earlier (counts), d0 later (no)
            [0.7, 0.1, 0.1, 0.1, 0.1],  # target g0: strictly best
            [0.2, 0.2, 0.2, 0.2, 0.2],  # target g2: all tie, g0 and g1 are earlier
        ],
        dtype=np.float32,
    )
    ranks = m.ranks_from_scores(scores, np.array([1, 2, 0, 2]))
    assert ranks.tolist() == [3, 2, 1, 3]
    # Filtered: only items of the target's category take part.
    cats = np.array([0, 1, 1, 1, 0])
    fr = m.ranks_from_scores(
        scores, np.array([1, 2, 0, 2]), cats[None, :] == np.array([[1], [1], [0], [1]])
    )
    assert fr.tolist() == [1, 2, 1, 2]
    # Weights: d1 drawn twice, g0 absent.
    wr = m.ranks_from_scores(scores, np.array([1, 2, 0, 2]), item_weights=np.array([0, 1, 1, 1, 2]))
    assert wr.tolist() == [3, 2, 1, 2]


def test_topk_tie_order():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.5]], dtype=np.float32)
    assert m.topk_from_scores(scores, 4).tolist() == [[3, 1, 2, 4]]


def test_recall_cat_median_hand_computed():
    ranks = np.array([1, 3, 7, 60])
    assert m.recall_at_k(ranks, 1) == 0.25
    assert m.recall_at_k(ranks, 5) == 0.5
    assert m.recall_at_k(ranks, 10) == 0.75
    assert m.recall_at_k(ranks, 50) == 0.75
    assert m.median_rank(ranks) == 5.0
    assert m.median_rank(ranks, np.array([3, 0, 1, 1])) == 1.0  # [1, 1, 1, 7, 60]
    assert m.recall_at_k(ranks, 1, np.array([3, 0, 1, 1])) == 0.6
    topk = np.array([[0, 0, 1], [2, 1, 1]])
    target = np.array([0, 1])
    assert m.category_precision_at_k(topk, target, 1) == 0.5
    assert m.category_precision_at_k(topk, target, 3) == pytest.approx(2 / 3)
    # Empty slots (-1) never match and the denominator stays K.
    assert m.category_precision_at_k(np.array([[0, -1]]), np.array([0]), 2) == 0.5


def test_weighted_equals_duplicated_rows():
    rng = np.random.default_rng(3)
    ranks = rng.integers(1, 80, 31)
    fr = np.minimum(ranks, rng.integers(1, 80, 31))
    cats = rng.integers(0, 4, (31, 10))
    tcat = rng.integers(0, 4, 31)
    w = rng.integers(0, 4, 31)
    w[0] = 1
    rep = np.repeat(np.arange(31), w)
    weighted = m.summarize(ranks, fr, cats, tcat, w)
    expanded = m.summarize(ranks[rep], fr[rep], cats[rep], tcat[rep])
    assert weighted.keys() == expanded.keys()
    for key in weighted:
        assert weighted[key] == pytest.approx(expanded[key], abs=1e-12), key
    for _ in range(20):
        v = rng.integers(1, 9, rng.integers(1, 7))
        ww = rng.integers(0, 3, v.size)
        ww[0] += 1
        assert m.weighted_median(v, ww) == np.median(np.repeat(v, ww))


def test_summarize_keys():
    out = m.summarize(np.array([1, 2]), np.array([1, 1]), np.zeros((2, 10), int), np.zeros(2, int))
    assert list(out) == [
        "R@1", "R@5", "R@10", "R@20", "R@50", "Cat@1", "Cat@5", "Cat@10",
        "filtered_R@1", "filtered_R@5", "filtered_R@10", "median_rank",
    ]  # fmt: skip
    assert "Cat@1" not in m.summarize(np.array([1]), np.array([1]))


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.array([1, -1]), "non-negative"),
        (np.array([1.5, 1.0]), "integer"),
        (np.array([1, 1, 1]), "shape"),
        (np.array([0, 0]), "all zero"),
    ],
)
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        m.recall_at_k(np.array([1, 2]), 1, weights)


def test_bad_inputs():
    with pytest.raises(ValueError, match="1-based"):
        m.recall_at_k(np.array([0, 2]), 1)
    with pytest.raises(ValueError, match="outside"):
        m.category_precision_at_k(np.zeros((2, 3), int), np.zeros(2, int), 5)
