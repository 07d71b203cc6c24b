"""The faiss backend: ANN recall against exact search, filters, training, deletes, rerank."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from referred.index import NotTrainedError, SpecError, UnknownIdError, create_index
from tests.index.synth import brute_force, catalog, recall_at, structured

N, DIM = 10_000, 32


@pytest.fixture(scope="module")
def data():
    x = structured(N, DIM, seed=10)
    q = structured(200, DIM, seed=11)
    ids, meta = catalog(N)
    return x, q, ids, meta


@pytest.fixture(scope="module")
def hnsw_base(data):
    x, _, ids, meta = data
    index = create_index("faiss:HNSW32", DIM)
    index.add(ids, x, meta)
    return index


def _keep(meta, field, values) -> np.ndarray:
    return np.array([m.get(field) in values for m in meta])


def test_hnsw_recall_at_10_vs_flat(data, hnsw_base):
    x, q, ids, _ = data
    _, truth = brute_force(x, ids, q, 10)
    _, got = hnsw_base.search(q, 10)
    assert recall_at(got, truth) >= 0.9
    # single queries give the batch's answer
    assert (hnsw_base.search(q[3], 10).ids[0] == got[3]).all()


def test_selective_filter_is_answered_exactly(data, hnsw_base):
    x, q, ids, meta = data
    keep = _keep(meta, "rare", [True])
    assert keep.mean() == pytest.approx(0.01, abs=0.001)
    scores, got = hnsw_base.search(q, 10, filter={"rare": True})
    want_s, _ = brute_force(x, ids, q, 10, keep)
    assert (got != "").all() and set(got.ravel()) <= set(np.asarray(ids)[keep])
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


@pytest.fixture(scope="module")
def ivf_base(data):
    x, _, ids, meta = data
    index = create_index("faiss:IVF32,SQ8", DIM, nprobe=4)
    index.add(ids, x, meta)
    return index


@pytest.mark.parametrize("which", ["hnsw_base", "ivf_base"])
@pytest.mark.parametrize("flt", [{"rare": True}, {"category": ["Bags", "Feet"]}])
def test_filter_through_id_selector(request, data, which, flt):
    """With the exact shortcut off, the selector path still returns k rows from the set."""
    x, q, ids, meta = data
    index = request.getfixturevalue(which)
    index.configure(exact_filter_rows=0)
    try:
        _, got = index.search(q, 10, filter=flt)
    finally:
        index.configure(exact_filter_rows=20_000)
    field, values = next(iter(flt.items()))
    keep = _keep(meta, field, values if isinstance(values, list) else [values])
    _, want = brute_force(x, ids, q, 10, keep)
    assert (got != "").all()
    assert set(got.ravel()) <= set(np.asarray(ids)[keep])
    assert recall_at(got, want) >= 0.9


def test_hnsw_delete_upsert_and_compact(data):
    x, q, ids, meta = data
    index = create_index("faiss:HNSW16", DIM)
    index.add(ids[:3000], x[:3000], meta[:3000])
    top = index.search(q[:5], 3).ids
    gone = sorted(set(top[:, 0]))
    index.delete(gone)
    assert len(index) == 3000 - len(gone)
    assert not set(gone) & set(index.search(q[:5], 10).ids.ravel())
    with pytest.raises(UnknownIdError):
        index.get(gone[:1])
    index.upsert([gone[0]], q[:1], [{"category": "Feet"}])  # back, now equal to query 0
    res = index.search(q[:1], 1)
    assert res.ids[0, 0] == gone[0] and res.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    before = index.search(q, 10)
    index.compact()
    assert index._catalog.n_dead == 0 and index._index.ntotal == len(index)
    after = index.search(q, 10)
    assert recall_at(after.ids, before.ids) >= 0.97


def test_ivf_deletes_from_the_index_itself(data):
    x, _, ids, _ = data
    index = create_index("faiss:IVF32,Flat", DIM, nprobe=32)
    index.add(ids[:3000], x[:3000])
    index.delete(ids[:100])
    assert index._index.ntotal == 2900 == len(index)
    index.upsert(ids[100:110], x[100:110] * -1)
    assert index._index.ntotal == 2900
    got = index.search(-x[100:101], 1).ids[0, 0]
    assert got == ids[100]


def test_training_rules():
    x = structured(3000, DIM, seed=3)
    ids = [f"t{i}" for i in range(3000)]
    index = create_index("faiss:IVF32,SQ8", DIM, train_min=2000)
    assert not index.is_trained and index.hard_min == 32
    with pytest.raises(NotTrainedError, match="train_min=2000"):
        index.add(ids[:500], x[:500])
    assert len(index) == 0 and not index.is_trained
    with pytest.raises(NotTrainedError, match="at least 32"):
        index.train(x[:10])
    index.train(x[:1000])  # explicit training: hard minimum only
    index.add(ids[:5], x[:5])  # then small batches are fine
    assert len(index) == 5
    with pytest.raises(NotTrainedError, match="already holds"):
        index.train(x)
    auto = create_index("faiss:IVF32,SQ8", DIM, train_min=2000)
    auto.add(ids, x)  # a big enough first add trains on itself
    assert auto.is_trained and len(auto) == 3000


def test_rerank_returns_exact_scores(data):
    x, q, ids, _ = data
    index = create_index("faiss:IVF32,PQ8x4fs", DIM, rerank=100, nprobe=8)
    index.add(ids, x)
    scores, got = index.search(q[:20], 10)
    rows = np.array([[int(i[1:]) for i in row] for row in got])
    exact = np.einsum("qd,qkd->qk", q[:20], x[rows])
    np.testing.assert_allclose(scores, exact, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    plain = create_index("faiss:IVF32,PQ8x4fs", DIM, nprobe=8)
    plain.add(ids, x)
    _, truth = brute_force(x, ids, q, 10)
    assert recall_at(got, truth[:20]) > recall_at(plain.search(q[:20], 10).ids, truth[:20])


def test_lossy_index_keeps_float_vectors_for_get(data):
    x, _, ids, _ = data
    index = create_index("faiss:HNSW16,SQ8", DIM)
    index.add(ids[:2000], x[:2000])
    assert index.store_vectors
    np.testing.assert_array_equal(index.get(ids[:3]).vectors, x[:3])


def test_index_without_search_params_filters_exactly(data):
    x, q, ids, meta = data
    index = create_index("faiss:PQ8x4fs", DIM, exact_filter_rows=0)
    index.add(ids[:2000], x[:2000], meta[:2000])
    keep = _keep(meta[:2000], "category", ["Bags"])
    scores, _ = index.search(q[:5], 5, filter={"category": "Bags"})
    want_s, _ = brute_force(x[:2000], ids[:2000], q[:5], 5, keep)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ("faiss:Bogus99", {}, "faiss cannot build"),
        ("faiss:IDMap,Flat", {}, "IDMap"),
        ("faiss:HNSW32", {"efSearch": 64}, "accepted"),
        ("faiss:HNSW32", {"ef_search": 0}, "ef_search"),
        ("faiss:HNSW32", {"rerank": 10, "store_vectors": False}, "rerank"),
        ("faiss:IVF16,PQ4", {"store_vectors": False}, "lossy"),
    ],
)
def test_bad_faiss_specs(spec, options, match):
    with pytest.raises(SpecError, match=match):
        create_index(spec, DIM, **options)


def test_short_selector_results_fall_back_to_exact(data, hnsw_base, monkeypatch):
    """When the graph search finds fewer than k matching rows, those queries are redone exactly."""
    from referred.index import faiss_index

    _, q, ids, meta = data
    calls, real = [], faiss_index.exact_search

    def spy(source, queries, k, mask=None):
        calls.append(len(queries))
        return real(source, queries, k, mask)

    monkeypatch.setattr(faiss_index, "exact_search", spy)
    monkeypatch.setattr(faiss_index, "MAX_SEARCH_SCALE", 1)
    hnsw_base.configure(ef_search=1, exact_filter_rows=0)
    try:
        _, got = hnsw_base.search(q, 10, filter={"rare": True})
    finally:
        hnsw_base.configure(ef_search=128, exact_filter_rows=20_000)
    assert calls and 0 < calls[0] <= len(q)
    keep = _keep(meta, "rare", [True])
    assert (got != "").all() and set(got.ravel()) <= set(np.asarray(ids)[keep])


def test_thread_and_blas_settings_are_applied():
    import faiss

    index = create_index("faiss:HNSW8", DIM, threads=1, blas_threshold=16)
    assert faiss.cvar.distance_compute_blas_threshold == 16
    assert faiss.omp_get_max_threads() == 1
    index.configure(blas_threshold=20)
    assert faiss.cvar.distance_compute_blas_threshold == 20
