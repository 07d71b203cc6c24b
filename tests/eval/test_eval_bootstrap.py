"""Bootstrap protocols: weights == explicit subsets with duplicated rows; seeded folds repeat."""

from __future__ import annotations

import numpy as np
import pytest

from referred.eval import metrics
from referred.eval.benchmark import EvalConfig, evaluate
from referred.eval.bootstrap import aggregate, lrvsf_subsamples, paper_subsamples, parse_dist_key
from referred.eval.ranking import sweep_ranks
from referred.eval.sources import array_blocks
from tests.eval.synth import sign_bench

N_SUBSETS = 3


def make_bootstrap(b, product_ids, labels, seed=5):
    rng = np.random.default_rng(seed)
    return {
        "test_subsets": [rng.choice(product_ids, 20) for _ in range(N_SUBSETS)],
        "dist_60_subsets": [rng.choice(labels, 60) for _ in range(N_SUBSETS)],
        "dist_300_subsets": [rng.choice(labels, 300) for _ in range(N_SUBSETS)],
    }


def explicit_metrics(b, gallery_draw, dist_positions):
    """Metrics of one subset built explicitly: the drawn products' queries (duplicated rows),
    each drawn product's target once, the drawn distractors (duplicated rows)."""
    uniq = np.unique(gallery_draw)  # subset gallery, in gallery order
    items = np.concatenate([b.gallery[uniq], b.distractors[dist_positions]])
    icats = np.concatenate([b.gallery_categories[uniq], b.distractor_categories[dist_positions]])
    queries = b.queries[gallery_draw]  # query i's target is gallery row i
    tpos = np.searchsorted(uniq, gallery_draw)
    scores = queries @ items.T
    tcat = b.gallery_categories[gallery_draw]
    ranks = metrics.ranks_from_scores(scores, tpos)
    franks = metrics.ranks_from_scores(scores, tpos, icats[None, :] == tcat[:, None])
    return metrics.summarize(ranks, franks)


def test_paper_protocol_equals_duplicated_rows():
    b = sign_bench()
    product_ids = np.array([f"P{i:03d}" for i in range(len(b.gallery))])
    labels = np.arange(len(b.distractors)) * 3 + 1000  # labels of the metadata frame
    boot = make_bootstrap(b, product_ids, labels)
    report = evaluate(
        b.queries, b.gallery, b.gallery_categories,
        array_blocks(b.distractors, b.distractor_categories, 77), [0, 100],
        bootstrap=boot, product_ids=product_ids, distractor_labels=labels, lrvsf_seed=None,
    )  # fmt: skip
    assert sorted(report["bootstrap"], key=int) == ["0", "60", "300"]
    row_of = {p: i for i, p in enumerate(product_ids)}
    pos_of = {lab: i for i, lab in enumerate(labels)}
    for key, n in (("", 0), ("dist_60_subsets", 60), ("dist_300_subsets", 300)):
        per = []
        for i in range(N_SUBSETS):
            draw = np.array([row_of[p] for p in boot["test_subsets"][i]])
            dist = np.array([pos_of[x] for x in boot[key][i]] if key else [], dtype=int)
            per.append(explicit_metrics(b, draw, dist))
        got = report["bootstrap"][str(n)]
        assert set(got) == set(per[0])
        for name in per[0]:
            vals = [p[name] for p in per]
            assert got[name]["mean"] == pytest.approx(np.mean(vals), abs=1e-12), (n, name)
            assert got[name]["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12), (n, name)
            assert got[name]["n"] == N_SUBSETS


def test_lrvsf_weights_equal_duplicated_rows():
    b = sign_bench(n=25, n_d=300)
    subs = lrvsf_subsamples(25, np.arange(25), 300, distractor_counts=(40, 500), n_folds=2,
                            fold_size=15, seed=3)  # fmt: skip
    assert [s.n_distractors for s in subs] == [40, 40]  # 500 > pool of 300: left out
    res = sweep_ranks(b.queries, b.gallery, b.gallery_categories,
                      array_blocks(b.distractors, b.distractor_categories, 50), [300],
                      weights=[s.spec for s in subs])  # fmt: skip
    for j, s in enumerate(subs):
        got = metrics.summarize(res.weighted_ranks[j], res.weighted_filtered_ranks[j],
                                weights=s.query_weights)  # fmt: skip
        draw = np.repeat(np.arange(25), s.query_weights)
        dist = np.repeat(s.spec.distractors.indices, s.spec.distractors.counts)
        assert s.spec.distractors.total == 40
        want = explicit_metrics(b, draw, dist)
        for name in want:
            assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_lrvsf_seed_repeats_and_differs():
    b = sign_bench(n=20, n_d=300)

    def run(seed):
        return evaluate(
            b.queries, b.gallery, b.gallery_categories,
            array_blocks(b.distractors, b.distractor_categories), [0, 300], lrvsf_seed=seed,
            config=EvalConfig(lrvsf_counts=(30, 200), lrvsf_folds=4, lrvsf_fold_size=10),
        )["lrvsf_benchmark"]  # fmt: skip

    first, again, other = run(7), run(7), run(8)
    assert sorted(first, key=int) == ["30", "200"]
    assert first == again
    assert first != other
    a = lrvsf_subsamples(20, np.arange(20), 300, distractor_counts=(30,), n_folds=2, seed=1)
    c = lrvsf_subsamples(20, np.arange(20), 300, distractor_counts=(30,), n_folds=2, seed=1)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x.query_weights, y.query_weights)
        np.testing.assert_array_equal(x.spec.distractors.indices, y.spec.distractors.indices)


def test_paper_subsample_errors():
    pids = np.array([10, 11, 12])
    tidx = np.arange(3)
    with pytest.raises(ValueError, match="no 'test_subsets'"):
        paper_subsamples({"dist_5_subsets": []}, pids, tidx)
    with pytest.raises(ValueError, match=r"1 of 2 ids are unknown, e.g. \[99\]"):
        paper_subsamples({"test_subsets": [np.array([10, 99])]}, pids, tidx)
    with pytest.raises(ValueError, match="2 subsets but test_subsets has 1"):
        paper_subsamples({"test_subsets": [pids], "dist_5_subsets": [np.arange(5)] * 2}, pids, tidx)
    # String ids in the file, integer ids in the metadata: compared as text.
    subs = paper_subsamples({"test_subsets": [np.array(["10", "10", "12"])]}, pids, tidx)
    assert subs[0].query_weights.tolist() == [2, 0, 1]
    assert subs[0].spec.gallery.tolist() == [1, 0, 1]


def test_parse_key_and_aggregate():
    assert parse_dist_key("dist_10000_subsets") == 10_000
    assert parse_dist_key("dist_1M_subsets") == 1_000_000
    with pytest.raises(ValueError, match="dist_<n>_subsets"):
        parse_dist_key("distractors")
    out = aggregate([(10, {"R@1": 0.5}), (10, {"R@1": 0.7}), (0, {"R@1": 1.0})])
    assert out["10"]["R@1"]["mean"] == pytest.approx(0.6)
    assert out["10"]["R@1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert out["0"]["R@1"]["std"] is None  # one subset: no sample std
