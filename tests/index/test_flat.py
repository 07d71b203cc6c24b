"""The flat backend against a numpy brute force: exact results, filters, deletes, upserts."""

from __future__ import annotations

import numpy as np
import pytest

from referred.index import create_index
from referred.index.vectors import exact_search
from tests.index.synth import brute_force


@pytest.fixture
def flat(vectors, products):
    ids, meta = products
    index = create_index("flat", vectors.shape[1])
    index.add(ids, vectors, meta)
    return index


def test_hand_computed_case():
    index = create_index("flat", 2)
    index.add(["a", "b", "c"], np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32))
    scores, ids = index.search(np.array([[0.8, 0.6]], dtype=np.float32), k=2)
    assert ids.tolist() == [["c", "a"]]  # c: 0.8·0.6 + 0.6·0.8 = 0.96; a: 0.8; b: 0.6
    np.testing.assert_allclose(scores, [[0.96, 0.8]], rtol=1e-6)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_matches_brute_force(flat, vectors, products, queries, k):
    scores, ids = flat.search(queries, k)
    want_s, want_ids = brute_force(vectors, products[0], queries, k)
    assert scores.shape == ids.shape == (len(queries), k)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert (ids == want_ids).mean() > 0.99  # only float near-ties may swap


def test_single_query_and_1d_query(flat, queries):
    s1, i1 = flat.search(queries[:1], 5)
    s2, i2 = flat.search(queries[0], 5)
    assert i1.shape == (1, 5) and (i1 == i2).all()
    np.testing.assert_array_equal(s1, s2)


def test_blocked_search_equals_one_block(vectors, queries, monkeypatch):
    """Streaming the rows in many small blocks gives the one-matmul result."""
    from referred.index import vectors as vec_mod
    from referred.index.vectors import VectorStore

    store = VectorStore(vectors.shape[1])
    store.append(vectors[:1500])
    store.append(vectors[1500:])
    whole = exact_search(store, queries, 10)
    monkeypatch.setattr(vec_mod, "SCORE_BUDGET", 64)  # 1024-row blocks
    blocked = exact_search(store, queries, 10)
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_k_larger_than_index_pads(flat, queries):
    scores, ids = flat.search(queries[:2], len(flat) + 5)
    assert (ids[:, -5:] == "").all() and np.isneginf(scores[:, -5:]).all()
    assert (ids[:, :-5] != "").all() and np.isfinite(scores[:, :-5]).all()


@pytest.mark.parametrize("flt", [{"rare": True}, {"category": ["Bags", "Head"]}])
def test_filter_equals_exact_filtered_search(flat, vectors, products, queries, flt):
    ids, meta = products
    keep = np.array([all(_matches(m, f, v) for f, v in flt.items()) for m in meta])
    scores, got = flat.search(queries, 10, filter=flt)
    want_s, want = brute_force(vectors, ids, queries, 10, keep)
    assert (got != "").all(), "a selective filter still returns k results"
    allowed = {i for i, ok in zip(ids, keep) if ok}
    assert set(got.ravel()) <= allowed
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert (got == want).mean() > 0.99


def _matches(meta: dict, field: str, value) -> bool:
    return meta.get(field) in value if isinstance(value, list) else meta.get(field) == value


def test_filter_with_fewer_matches_than_k_pads(flat, queries):
    flat.add(["only"], queries[:1], [{"category": "Unique"}])
    scores, ids = flat.search(queries[:3], 4, filter={"category": "Unique"})
    assert ids[:, 0].tolist() == ["only"] * 3 and (ids[:, 1:] == "").all()
    assert np.isneginf(scores[:, 1:]).all()


def test_filter_matching_nothing_returns_padding(flat, queries):
    scores, ids = flat.search(queries[:2], 3, filter={"category": "Nope"})
    assert (ids == "").all() and np.isneginf(scores).all()


def test_delete_hides_rows_and_upsert_replaces(flat, vectors, products, queries):
    ids = products[0]
    top = flat.search(queries[:1], 3).ids[0]
    flat.delete([top[0]])
    assert top[0] not in flat and len(flat) == len(ids) - 1
    assert top[0] not in flat.search(queries[:1], 10).ids[0]
    # upsert an existing id with the query itself: it becomes the best match, metadata replaced
    flat.upsert([top[1]], queries[:1], [{"category": "Feet", "title": "new"}])
    res = flat.search(queries[:1], 1)
    assert res.ids[0, 0] == top[1] and res.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    rec = flat.get([top[1]])
    assert rec.metadata[0] == {"id": top[1], "category": "Feet", "title": "new"}
    np.testing.assert_array_equal(rec.vectors[0], queries[0])
    # upsert of a new id inserts it
    flat.upsert(["brand-new"], vectors[:1])
    assert "brand-new" in flat and len(flat) == len(ids)


def test_lazy_compaction_keeps_results(flat, vectors, products, queries):
    ids = products[0]
    flat.delete(ids[:10])  # a few tombstones stay until they pass COMPACT_FRACTION
    assert flat._catalog.n_dead == 10
    gone = ids[: len(ids) // 2]
    flat.delete(gone[10:])
    assert flat._catalog.n_dead == 0 and len(flat._store) == len(ids) - len(gone)
    scores, _ = flat.search(queries, 5)
    keep = np.ones(len(ids), dtype=bool)
    keep[: len(gone)] = False
    want_s, _ = brute_force(vectors, ids, queries, 5, keep)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert flat.get([ids[-1]]).vectors[0].tolist() == vectors[-1].tolist()


def test_get_returns_vectors_and_metadata_in_order(flat, vectors, products):
    ids, meta = products
    rec = flat.get([ids[5], ids[2], ids[5]])
    np.testing.assert_array_equal(rec.vectors, vectors[[5, 2, 5]])
    assert rec.metadata[1] == {"id": ids[2], **meta[2]}
    assert flat.get([ids[0]], vectors=False).vectors is None


def test_unnormalised_vectors_log_a_warning(caplog):
    index = create_index("flat", 3)
    with caplog.at_level("WARNING", logger="referred.index.base"):
        index.add(["a"], np.array([[3.0, 0.0, 0.0]], dtype=np.float32))
    assert "not L2-normalised" in caplog.text
