"""The milvus backend on a real Milvus standalone server (``tests/milvus_fixture.py``): what
``test_flat.py`` and ``test_faiss.py`` check of the local backends (recall against brute
force once the server has indexed, exact selective filters, wide filters, deletes, upserts,
ids and metadata). ``test_milvus_restart.py`` restarts the server.

The shared checks (bad input, save/load, info, concurrent searches) run on it through the
``milvus-server`` parameter of ``test_errors.py``, ``test_info.py`` and ``test_persistence.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from referred.index import UnknownIdError
from tests.index.specs import make_index
from tests.index.synth import brute_force, recall_at

pytestmark = pytest.mark.milvus


def _keep(meta, field, values) -> np.ndarray:
    return np.array([m.get(field) in values for m in meta])


@pytest.fixture(scope="module")
def served(request, vectors, products):
    """4,000 products, flushed and indexed by the server (HNSW), shared by the read-only tests."""
    ids, meta = products
    index = make_index(request, "milvus-server", vectors.shape[1])
    index.add(ids, vectors, meta)
    assert index.wait_until_indexed(timeout=300)
    return index


def test_indexed_segments_serve_hnsw_with_recall_of_exact_search(
    served, vectors, products, queries
):
    client = served._client
    described = client.describe_index(served.collection, "vector")
    assert described["index_type"] == "HNSW" and described["indexed_rows"] >= len(vectors)
    segments = client.list_loaded_segments(served.collection)
    assert segments and all(s.index_name for s in segments)
    _, truth = brute_force(vectors, products[0], queries, 10)
    scores, got = served.search(queries, 10)
    assert recall_at(got, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    assert (served.search(queries[3], 10).ids[0] == got[3]).all()  # single query = batch row


@pytest.mark.parametrize("k", [1, 10])
def test_selective_filter_is_answered_exactly(served, vectors, products, queries, k):
    ids, meta = products
    keep = _keep(meta, "rare", [True])
    assert keep.sum() == 40
    scores, got = served.search(queries, k, filter={"rare": True})
    want_s, want = brute_force(vectors, ids, queries, k, keep)
    assert (got != "").all() and set(got.ravel()) <= set(np.asarray(ids)[keep])
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert (got == want).mean() > 0.99  # only float near-ties may swap


@pytest.mark.parametrize("flt", [{"rare": True}, {"category": ["Bags", "Feet"]}])
def test_filter_through_milvus_keeps_recall(served, vectors, products, queries, flt):
    """With the exact shortcut off, Milvus's own filtered search returns k rows from the set."""
    ids, meta = products
    default, served.exact_filter_rows = served.exact_filter_rows, 0
    try:
        _, got = served.search(queries, 10, filter=flt)
    finally:
        served.exact_filter_rows = default
    field, values = next(iter(flt.items()))
    keep = _keep(meta, field, values if isinstance(values, list) else [values])
    _, want = brute_force(vectors, ids, queries, 10, keep)
    assert (got != "").all() and set(got.ravel()) <= set(np.asarray(ids)[keep])
    assert recall_at(got, want) >= 0.9


def test_filter_with_fewer_matches_than_k_pads(served, queries, products):
    meta = products[1]
    _, got = served.search(queries[:2], 50, filter={"rare": True, "category": "Bags"})
    n = sum(m["rare"] and m["category"] == "Bags" for m in meta)
    assert 0 < n < 50 and (got[:, :n] != "").all() and (got[:, n:] == "").all()


def test_get_returns_vectors_and_metadata_in_order(served, vectors, products):
    ids, meta = products
    rec = served.get([ids[7], ids[3], ids[7]])
    np.testing.assert_allclose(rec.vectors, vectors[[7, 3, 7]], atol=1e-6)
    assert rec.metadata[1] == {"id": ids[3], **meta[3]}
    assert rec.ids == [ids[7], ids[3], ids[7]]


def test_delete_hides_rows_and_upsert_replaces(request, vectors, products, queries):
    ids, meta = products
    index = make_index(request, "milvus-server", vectors.shape[1])
    index.add(ids[:1000], vectors[:1000], meta[:1000])
    top = index.search(queries[:5], 3).ids
    gone = sorted(set(top[:, 0]))
    index.delete(gone)
    assert len(index) == 1000 - len(gone)
    assert not set(gone) & set(index.search(queries[:5], 10).ids.ravel())
    with pytest.raises(UnknownIdError):
        index.get(gone[:1])
    index.upsert([gone[0], ids[5]], queries[:2], [{"category": "Feet"}, {"title": "new"}])
    res = index.search(queries[:2], 1)
    assert res.ids[:, 0].tolist() == [gone[0], ids[5]]
    np.testing.assert_allclose(res.scores[:, 0], 1.0, atol=1e-5)
    assert index.get([ids[5]], vectors=False).metadata == [{"id": ids[5], "title": "new"}]
    assert len(index) == 1000 - len(gone) + 1
