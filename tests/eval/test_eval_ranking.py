"""Streamed ranking against a full-matrix numpy oracle (exact ties, awkward block sizes)."""

from __future__ import annotations

import numpy as np
import pytest

from referred.eval.metrics import ranks_from_scores, topk_from_scores
from referred.eval.ranking import WeightSpec, sweep_ranks
from referred.eval.sources import Multiplicity, array_blocks, npy_blocks, prefetch
from tests.eval.synth import dyadic_bench, realistic_bench

K = 5


def ragged_blocks(emb, cats, seed=0):
    """A source whose blocks have random sizes (1..40 rows)."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(emb):
        stop = min(len(emb), start + int(rng.integers(1, 41)))
        yield emb[start:stop], cats[start:stop]
        start = stop


def check_against_oracle(b, res, weights=(), exact_scores=True):
    n_g = len(b.gallery)
    items = np.concatenate([b.gallery, b.distractors])
    icats = np.concatenate([b.gallery_categories, b.distractor_categories])
    scores = b.queries @ items.T  # (n_q, n_items) the full matrix
    tcat = b.gallery_categories[b.target_index]
    same = icats[None, :] == tcat[:, None]
    for i, n in enumerate(res.distractor_counts):
        s = scores[:, : n_g + n]
        np.testing.assert_array_equal(res.ranks[i], ranks_from_scores(s, b.target_index))
        np.testing.assert_array_equal(
            res.filtered_ranks[i], ranks_from_scores(s, b.target_index, same[:, : n_g + n])
        )
        top = topk_from_scores(s, K)
        n_top = top.shape[1]  # fewer than K when fewer items exist: the rest stays empty
        np.testing.assert_array_equal(res.topk_positions[i][:, :n_top], top)
        assert (res.topk_positions[i][:, n_top:] == -1).all()
        np.testing.assert_array_equal(res.topk_categories[i][:, :n_top], icats[top])
        got, want = res.topk_scores[i][:, :n_top], np.take_along_axis(s, top, 1)
        if exact_scores:
            np.testing.assert_array_equal(got, want)
        else:  # another matmul (torch, other block shapes) may round differently
            np.testing.assert_allclose(got, want, atol=1e-6)
    for j, spec in enumerate(weights):
        iw = np.concatenate([spec.gallery, spec.distractors.dense(0, len(b.distractors))])
        np.testing.assert_array_equal(
            res.weighted_ranks[j], ranks_from_scores(scores, b.target_index, item_weights=iw)
        )
        np.testing.assert_array_equal(
            res.weighted_filtered_ranks[j],
            ranks_from_scores(scores, b.target_index, same, item_weights=iw),
        )


def random_weights(b, n, seed=1):
    rng = np.random.default_rng(seed)
    n_g, n_d = len(b.gallery), len(b.distractors)
    specs = [
        WeightSpec(rng.integers(0, 3, n_g), Multiplicity.from_samples(rng.integers(0, n_d, 150)))
        for _ in range(n)
    ]
    specs.append(WeightSpec(np.ones(n_g, int), Multiplicity.empty()))  # gallery only
    return specs


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000])
@pytest.mark.parametrize("dense_fraction", [0.0, 0.02, 1.0])  # always dense / auto / sparse
def test_streamed_equals_oracle_with_ties(block_size, dense_fraction):
    b = dyadic_bench()
    weights = random_weights(b, 3)
    res = sweep_ranks(
        b.queries, b.gallery, b.gallery_categories,
        ragged_blocks(b.distractors, b.distractor_categories),
        [0, 3, 50, 64, 301], target_index=b.target_index, k=K, weights=weights,
        block_size=block_size, query_chunk=7, dense_fraction=dense_fraction,
    )  # fmt: skip
    assert res.distractor_counts == (0, 3, 50, 64, 301)
    assert res.n_streamed == 301
    check_against_oracle(b, res, weights)


def test_float_data_and_torch_matmul():
    b = realistic_bench(n=40, n_d=500)
    for matmul in ("numpy", "torch"):
        res = sweep_ranks(
            b.queries, b.gallery, b.gallery_categories,
            array_blocks(b.distractors, b.distractor_categories, 33),
            [0, 100, 500], k=K, block_size=64, query_chunk=16, matmul=matmul,
        )  # fmt: skip
        check_against_oracle(b, res, exact_scores=False)


def test_gallery_smaller_than_k_and_npy_source(tmp_path):
    b = dyadic_bench(n_q=5, n_g=3, n_d=40)
    path = tmp_path / "d.npy"
    np.save(path, b.distractors)
    res = sweep_ranks(
        b.queries, b.gallery, b.gallery_categories,
        npy_blocks(path, b.distractor_categories, block_size=6),
        [0, 2, 40], target_index=b.target_index, k=K, block_size=4,
    )  # fmt: skip
    assert (res.topk_positions[0][:, 3:] == -1).all()  # only 3 items exist at 0 distractors
    check_against_oracle(b, res)


def test_stream_stops_early_and_fails_when_short():
    b = dyadic_bench()
    consumed = []

    def source():
        for blk in array_blocks(b.distractors, b.distractor_categories, 10):
            consumed.append(len(blk[0]))
            yield blk

    sweep_ranks(b.queries, b.gallery, b.gallery_categories, source(), [25],
                target_index=b.target_index, read_ahead=0)  # fmt: skip
    assert sum(consumed) == 30  # three blocks of 10 cover 25
    with pytest.raises(ValueError, match="ended after 301 vectors; 400 are needed"):
        sweep_ranks(b.queries, b.gallery, b.gallery_categories,
                    array_blocks(b.distractors, b.distractor_categories), [400],
                    target_index=b.target_index)  # fmt: skip


def test_weights_extend_the_stream():
    b = dyadic_bench()
    spec = WeightSpec(np.ones(len(b.gallery), int), Multiplicity.from_samples([250, 250, 3]))
    res = sweep_ranks(b.queries, b.gallery, b.gallery_categories,
                      array_blocks(b.distractors, b.distractor_categories), [0, 10],
                      target_index=b.target_index, k=K, weights=[spec])  # fmt: skip
    assert res.n_streamed == 251
    check_against_oracle(b, res, [spec])


def test_input_errors():
    b = dyadic_bench()
    src = array_blocks(b.distractors, b.distractor_categories)
    with pytest.raises(ValueError, match="target_index"):
        sweep_ranks(b.queries, b.gallery, b.gallery_categories, src, [0],
                    target_index=np.full(len(b.queries), 99))  # fmt: skip
    with pytest.raises(ValueError, match="unknown matmul"):
        sweep_ranks(b.queries, b.gallery, b.gallery_categories, src, [0],
                    target_index=b.target_index, matmul="cupy")  # fmt: skip
    bad = b.queries.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sweep_ranks(bad, b.gallery, b.gallery_categories, src, [0], target_index=b.target_index)
    with pytest.raises(ValueError, match="known"):
        sweep_ranks(b.queries, b.gallery, np.full(len(b.gallery), -1), src, [0],
                    target_index=b.target_index)  # fmt: skip


def test_multiplicity():
    mult = Multiplicity.from_samples([5, 1, 5, 9, 5])
    assert mult.indices.tolist() == [1, 5, 9] and mult.counts.tolist() == [1, 3, 1]
    assert mult.total == 5 and mult.end == 10
    assert mult.dense(4, 10).tolist() == [0, 3, 0, 0, 0, 1]
    dense = np.array([0, 2, 0, 1])
    assert Multiplicity.from_dense(dense).dense(0, 4).tolist() == dense.tolist()
    assert Multiplicity.empty().end == 0


def test_prefetch_order_errors_and_early_stop():
    blocks = [(np.full((2, 3), i, np.float32), np.full(2, i)) for i in range(6)]
    got = list(prefetch(iter(blocks), depth=2))
    assert [int(e[0, 0]) for e, _ in got] == list(range(6))

    def failing():
        yield blocks[0]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(failing()))
    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield blocks[0]
            i += 1

    it = prefetch(endless(), depth=2)
    next(it)
    it.close()  # joins the reader thread
    assert len(pulled) <= 5
