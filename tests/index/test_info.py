"""What the Searcher needs from the index: ``info`` kept across saves, records of products
without metadata, and concurrent filtered searches from threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from referred.index import MetadataError, create_index, load_index
from referred.index.storage import read_manifest
from tests.index.specs import MILVUS, make_index


@pytest.fixture(params=["flat", "faiss:HNSW32", MILVUS])
def spec(request):
    return request.param


def test_info_round_trips_through_save_and_load(request, spec, tmp_path, vectors, products):
    ids, meta = products
    index = make_index(request, spec, vectors.shape[1])
    index.add(ids[:300], vectors[:300], meta[:300])
    assert index.info == {}
    index.info = {"model": {"path": "m/", "fingerprint": "abc"}, "recall_at_10": 0.97}
    index.save(tmp_path / "i")
    assert read_manifest(tmp_path / "i")[1]["info"]["recall_at_10"] == 0.97
    again = load_index(tmp_path / "i")
    assert again.info == index.info
    again.add(ids[300:310], vectors[300:310])
    again.save(tmp_path / "i")  # a later save by other code keeps the record
    assert load_index(tmp_path / "i").info["model"]["path"] == "m/"


def test_unsavable_info_is_refused_before_writing(tmp_path, vectors, products):
    index = create_index("flat", vectors.shape[1])
    index.add(products[0][:5], vectors[:5])
    index.info = {"when": object()}
    with pytest.raises(MetadataError, match="JSON-serialisable"):
        index.save(tmp_path / "i")
    assert not (tmp_path / "i").exists()
    assert not list(tmp_path.iterdir())  # no temp directory left behind


def test_get_of_products_without_metadata(request, spec, vectors, products):
    index = make_index(request, spec, vectors.shape[1])
    index.add(products[0][:50], vectors[:50])  # no metadata at all
    records = index.get(["p000003", "p000001"], vectors=False)
    assert records.metadata == [{"id": "p000003"}, {"id": "p000001"}]


def test_concurrent_filtered_searches_agree_with_sequential(
    request, spec, vectors, queries, products
):
    ids, meta = products
    index = make_index(request, spec, vectors.shape[1])
    index.add(ids, vectors, meta)
    filters = [{"category": c} for c in ("Bags", "Feet", "Head", "Hands", "Lower Body")] * 8
    filters += [{"rare": True}, {"category": ["Bags", "Head"], "rare": False}] * 4
    want = [index.search(queries[i % 50], 5, filter=f).ids for i, f in enumerate(filters)]
    if hasattr(index, "_catalog"):
        index._catalog._masks.clear()  # recompute the masks concurrently
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(
                lambda a: index.search(queries[a[0] % 50], 5, filter=a[1]).ids, enumerate(filters)
            )
        )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
