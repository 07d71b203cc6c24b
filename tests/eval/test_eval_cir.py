"""The FashionIQ metric: hand-computed ranks with the candidate left out, the category
average, the bootstrap's spread, the report's shape and the table."""

from __future__ import annotations

import numpy as np
import pytest

from referred.eval.cir import (
    bootstrap_std,
    cir_ranks,
    cir_report,
    cir_table,
    method_scores,
    recalls,
)

GALLERY = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
QUERIES = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)


def test_ranks_by_hand_candidate_left_out_and_ties():
    # q0: target g2 (0.6); g0 scores 1 but is the candidate -> rank 1 (2 if it competed)
    # q1: target g3 (0); g2 (0.8) beats it, g0 ties at 0 and comes first, g1 is the candidate
    # q2: no candidate; g2 (1.0) and g1 (0.8) beat the target g0 (0.6)
    ranks = cir_ranks(QUERIES, GALLERY, np.array([2, 3, 0]), np.array([0, 1, -1]))
    assert ranks.tolist() == [1, 3, 3]
    kept = cir_ranks(QUERIES, GALLERY, np.array([2, 3, 0]), np.array([-1, -1, -1]))
    assert kept.tolist() == [2, 4, 3]
    assert recalls(ranks, (1, 3)) == {"R@1": pytest.approx(1 / 3), "R@3": 1.0}


def test_ranks_match_a_brute_force_oracle_in_any_block_size():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((50, 8)).astype(np.float32)
    g = rng.standard_normal((80, 8)).astype(np.float32)
    g[10] = g[11]  # a tie
    t = rng.integers(0, 80, 50)
    c = np.where(rng.random(50) < 0.8, rng.integers(0, 80, 50), -1)
    c[0], t[0] = 11, 10  # the tie's twin is the candidate
    expected = []
    for i in range(50):
        s = g @ q[i]
        beats = [
            j
            for j in range(80)
            if j not in (t[i], c[i]) and (s[j] > s[t[i]] or (s[j] == s[t[i]] and j < t[i]))
        ]
        expected.append(1 + len(beats))
    for block in (1, 7, 1024):
        assert cir_ranks(q, g, t, c, block=block).tolist() == expected


def test_category_average_and_mean_by_hand():
    ranks = {"dress": np.array([1, 60, 5]), "shirt": np.array([11, 49])}
    s = method_scores(ranks, samples=0)
    assert s["categories"]["dress"]["R@10"] == pytest.approx(2 / 3)
    assert s["categories"]["dress"]["R@50"] == pytest.approx(2 / 3)
    assert s["categories"]["shirt"] == {"R@10": 0.0, "R@50": 1.0, "queries": 2}
    assert s["average"] == {"R@10": pytest.approx(1 / 3), "R@50": pytest.approx(5 / 6),
                            "mean": pytest.approx(7 / 12)}  # fmt: skip


def test_bootstrap_std_follows_the_binomial_spread_and_repeats():
    rng = np.random.default_rng(1)
    n, p = 2000, 0.3
    ranks = {"a": np.where(rng.random(n) < p, 1, 100), "b": np.full(300, 1)}
    cats, avg = bootstrap_std(ranks, ks=(10,), samples=400, seed=3)
    observed = np.mean(ranks["a"] <= 10)
    assert cats["a"]["R@10"] == pytest.approx(np.sqrt(observed * (1 - observed) / n), rel=0.15)
    assert cats["b"]["R@10"] == 0.0  # every draw finds every target
    assert avg["R@10"] == pytest.approx(cats["a"]["R@10"] / 2, rel=1e-9)  # b never moves
    assert bootstrap_std(ranks, ks=(10,), samples=400, seed=3) == (cats, avg)
    with pytest.raises(ValueError, match="samples must be >= 2"):
        bootstrap_std(ranks, samples=1)


def test_report_has_the_issue_shape_and_the_table_the_papers():
    ranks = {
        "combiner": {"dress": np.array([1, 2, 80]), "toptee": np.array([3, 40])},
        "image": {"dress": np.array([20, 60, 80]), "toptee": np.array([30, 70])},
    }
    report = cir_report(ranks, "combiner", samples=20, seed=0, split="test")
    assert set(report["categories"]) == {"dress", "toptee"}
    assert report["categories"]["dress"]["R@10"] == pytest.approx(2 / 3)
    assert report["average"]["R@50"] == pytest.approx((2 / 3 + 1) / 2)
    assert 0 <= report["categories"]["dress"]["R@10_std"] <= 1
    assert report["methods"]["image"]["average"]["R@10"] == 0.0
    assert report["split"] == "test" and report["method"] == "combiner"
    lines = cir_table(report).splitlines()
    assert lines[0].split(" | ")[1:4] == ["dress R@10", "dress R@50", "toptee R@10"]
    assert lines[2].startswith("| combiner | 66.7 ± ") and lines[3].startswith(
        "| image | 0.0 ± 0.0"
    )
    assert lines[2].endswith("| 70.8 |")  # mean of 7/12 and 10/12
    with pytest.raises(ValueError, match="primary method 'text'"):
        cir_report(ranks, "text")
