"""Data in a real Milvus server survive its restart: what the index saved (flushed), and, in
the slow form, writes made after the save, which Milvus logs before it answers but replays
only when the collection is loaded again (~27 s for 100 rows on 2 vCPUs, against ~1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from referred.index import load_index
from tests.index.specs import drop_free_collections, make_index

pytestmark = pytest.mark.milvus


@pytest.mark.parametrize("after_save", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_data_survive_a_server_restart(
    request, milvus_server, tmp_path, vectors, products, queries, after_save
):
    ids, meta = products
    index = make_index(request, "milvus-server", vectors.shape[1], reuse=False)
    index.add(ids[:600], vectors[:600], meta[:600])
    if after_save:
        index.save(tmp_path / "ix")
    index.add(ids[600:700], vectors[600:700], meta[600:700])
    index.delete(ids[:10])
    index.upsert([ids[20]], queries[:1], [{"category": "Head"}])
    if not after_save:
        index.save(tmp_path / "ix")
    before = index.search(queries, 10, filter={"category": ["Bags", "Head"]})
    drop_free_collections(index._client)  # a restart reloads every loaded collection
    milvus_server.restart()
    again = load_index(tmp_path / "ix")
    assert len(again) == 690 and ids[3] not in again and ids[650] in again
    assert again.get([ids[20]], vectors=False).metadata == [{"id": ids[20], "category": "Head"}]
    after = again.search(queries, 10, filter={"category": ["Bags", "Head"]})
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
    assert again.fields == index.fields
