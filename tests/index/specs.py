"""Specs the shared index tests run on, and a factory that turns one into a fresh index.

``MILVUS`` stands for ``milvus:http://127.0.0.1:P`` on the session's real Milvus server
(``tests/milvus_fixture.py``). Creating and loading a collection takes Milvus 2–5 s, so a
test's collection is emptied and handed to the next test that asks for the same dimension
and default options, rather than dropped: each test still starts from an empty index.
"""

from __future__ import annotations

import pytest

from referred.index import create_index
from tests.milvus_fixture import new_collection_name

MILVUS = pytest.param("milvus-server", marks=pytest.mark.milvus, id="milvus-server")
_free: dict[tuple[str, int], list[str]] = {}  # (server uri, dim) -> emptied collections


def make_index(request: pytest.FixtureRequest, spec: str, dim: int, reuse=True, **options):
    """A new empty index of ``spec`` (skips faiss specs without faiss); ``reuse=False``: a
    Milvus collection left as it is afterwards, not emptied for the next test (dropping one
    takes Milvus 24 s after a restart; the server's data go at the session's end anyway)."""
    if spec == "milvus-server":
        return _milvus_index(request, dim, reuse=reuse, **options)
    if spec.startswith("faiss"):
        pytest.importorskip("faiss")
    return create_index(spec, dim, **options)


def _milvus_index(request: pytest.FixtureRequest, dim: int, reuse: bool, **options):
    uri = request.getfixturevalue("milvus_server").uri
    reuse = reuse and not options
    free = _free.setdefault((uri, dim), []) if reuse else []
    name = free.pop() if free else new_collection_name()
    index = create_index(f"milvus:{uri}", dim, collection=name, **options)
    assert len(index) == 0 and not index.fields, f"collection {name} was not emptied"

    def give_back() -> None:
        client = index._client
        if not reuse or not client.has_collection(name):
            return
        client.delete(name, filter='id != ""')
        left = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        if left[0]["count(*)"] == 0:
            free.append(name)
        else:
            client.drop_collection(name)

    request.addfinalizer(give_back)
    return index


def drop_free_collections(client) -> None:
    """Drop the emptied collections kept for reuse (before a restart, which reloads them)."""
    for free in _free.values():
        while free:
            client.drop_collection(free.pop())
