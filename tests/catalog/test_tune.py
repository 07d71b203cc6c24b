"""Tuning an approximate index to a target recall@10 against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from referred.catalog.tune import (
    exact_for,
    exact_neighbours,
    recall_for,
    recall_of,
    sample_rows,
    tune_to_recall,
)
from referred.index import create_index, load_index

faiss = pytest.importorskip("faiss")


def clustered(n: int = 3000, dim: int = 32, clusters: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [f"p{i}" for i in range(n)], x.astype(np.float32)


def filled(spec: str, ids, vectors, **options):
    index = create_index(spec, vectors.shape[1], **options)
    if not index.is_trained:
        index.train(vectors)
    index.add(ids, vectors)
    return index


def test_recall_by_hand_on_a_tiny_catalog():
    ids = ["a", "b", "c", "d"]
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]] + 0.01 * np.arange(4)[:, None]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = exact_neighbours(ids, vectors, np.array([0]), k=1)
    assert truth == [["b"]]  # a's nearest other product
    index = filled("flat", ids, vectors)
    assert recall_of(index, ids, vectors, np.array([0]), truth, k=1) == 1.0
    assert list(sample_rows(10, 3, seed=1)) == sorted(sample_rows(10, 3, seed=1))


@pytest.mark.parametrize(
    "spec, knob, start",
    [("faiss:HNSW8", "ef_search", {"ef_search": 8}), ("faiss:IVF64,Flat", "nprobe", {"nprobe": 1})],
)
def test_the_knob_rises_until_the_target_is_reached_and_is_saved(spec, knob, start, tmp_path):
    ids, vectors = clustered()
    index = filled(spec, ids, vectors, **start)
    rows = sample_rows(len(ids), 300)
    truth = exact_neighbours(ids, vectors, rows, 10)
    before = recall_of(index, ids, vectors, rows, truth, 10)
    assert before < 0.99  # the default-ish setting misses neighbours on this data
    t = tune_to_recall(index, ids, vectors, 0.99, n_queries=300, latency_queries=20)
    assert t.knob == knob and t.reached and t.curve[-1].value == t.value
    assert t.curve[-1].recall >= 0.99 and all(p.recall < 0.99 for p in t.curve[:-1])
    assert index.options()[knob] == t.value
    assert np.isclose(recall_of(index, ids, vectors, rows, truth, 10), t.curve[-1].recall)
    index.save(tmp_path / "idx")
    assert load_index(tmp_path / "idx").options()[knob] == t.value


def test_what_cannot_be_tuned_is_named():
    ids, vectors = clustered(n=200)
    with pytest.raises(ValueError, match="no search-time knob"):
        tune_to_recall(filled("flat", ids, vectors), ids, vectors, 0.9)
    with pytest.raises(ValueError, match=r"target recall must be in \(0, 1\]"):
        tune_to_recall(filled("faiss:HNSW8", ids, vectors), ids, vectors, 1.5)


def test_tuning_on_held_out_queries_asks_more_than_the_catalog_sample():
    ids, vectors = clustered(n=3500)
    catalog, queries = vectors[:3000], vectors[3000:]  # same clusters, not in the index
    index = filled("faiss:HNSW8", ids[:3000], catalog, ef_search=8)
    held = tune_to_recall(index, ids[:3000], catalog, 0.99, queries=queries, latency_queries=10)
    truth = exact_for(ids[:3000], catalog, queries, 10)
    assert held.reached and held.queries == 500
    assert np.isclose(recall_for(index, queries, truth, 10), held.curve[-1].recall)
    own = tune_to_recall(index, ids[:3000], catalog, 0.99, n_queries=500, latency_queries=10)
    assert own.value <= held.value  # the catalog's own vectors are the easier queries
