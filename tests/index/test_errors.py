"""Every bad input gets a clear error, and no rejected call changes the index."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from referred.index import (
    DuplicateIdError,
    EmptyIndexError,
    FilterError,
    IdError,
    IndexUsageError,
    MetadataError,
    SearchArgumentError,
    UnknownFieldError,
    UnknownIdError,
    VectorError,
    create_index,
)
from tests.index.specs import MILVUS, make_index

SPECS = ["flat", "faiss:HNSW16", MILVUS]
DIM = 32


def _filled(request, spec, vectors, products):
    ids, meta = products
    idx = make_index(request, spec, DIM)
    idx.add(ids[:500], vectors[:500], meta[:500])
    idx.delete(ids[:5])
    return idx


@pytest.fixture(params=SPECS)
def index(request, vectors, products):
    return _filled(request, request.param, vectors, products)


@pytest.fixture(scope="module")
def milvus_once(request, vectors, products):
    return _filled(request, "milvus-server", vectors, products)


@pytest.fixture(params=SPECS)
def unchanging(request, vectors, products):
    """An index for tests that must leave it as they found it (and check that they do): on
    Milvus one collection serves them all, since filling one takes seconds there."""
    if request.param == "milvus-server":
        return request.getfixturevalue("milvus_once")
    return _filled(request, request.param, vectors, products)


def _snapshot(index, queries):
    res = index.search(queries[:5], 7, filter={"category": ["Bags", "Feet"]})
    rec = index.get(["p000010", "p000499"])
    return len(index), index.fields, res.ids.tolist(), res.scores.tolist(), rec.metadata


def _bad_calls(vectors):
    v = vectors[600:602]
    nan, inf = v.copy(), v.copy()
    nan[1, 3] = np.nan
    inf[0, 0] = np.inf
    two = ["n1", "n2"]
    return {
        "wrong dim": (lambda i: i.add(two, v[:, :16]), VectorError, r"shape \(n, 32\)"),
        "nan": (lambda i: i.add(two, nan), VectorError, r"NaN or inf in row\(s\) \[1\]"),
        "inf upsert": (lambda i: i.upsert(["p000010", "n2"], inf), VectorError, "NaN or inf"),
        "int dtype": (lambda i: i.add(two, v.astype(np.int64)), VectorError, "floating"),
        "count mismatch": (lambda i: i.add(["n1"], v), VectorError, "1 ids but 2 vectors"),
        "dup in batch": (lambda i: i.add(["n1", "n1"], v), IdError, "repeat"),
        "dup existing": (lambda i: i.add(["n1", "p000010"], v), DuplicateIdError, "upsert"),
        "deleted id is free": None,
        "non-str id": (lambda i: i.add(["n1", 7], v), IdError, "must be str"),
        "empty id": (lambda i: i.add(["n1", ""], v), IdError, "empty string"),
        "bare str ids": (lambda i: i.add("n1", v[:1]), IdError, "single str"),
        "meta length": (lambda i: i.add(two, v, [{"category": "Bags"}]), MetadataError, "for 1"),
        "meta type": (
            lambda i: i.add(two, v, [{"category": 3}, {"category": 4}]),
            MetadataError,
            "category",
        ),
        "meta mixed": (
            lambda i: i.add(two, v, [{"size": 3}, {"size": "M"}]),
            MetadataError,
            "'size' mixes",
        ),
        "meta id": (lambda i: i.add(two, v, [{"id": "x"}, {"id": "y"}]), MetadataError, "'id'"),
        "delete unknown": (
            lambda i: i.delete(["p000010", "nope"]),
            UnknownIdError,
            "1 unknown id.*'nope'",
        ),
        "delete deleted": (lambda i: i.delete(["p000001"]), UnknownIdError, "p000001"),
        "get unknown": (lambda i: i.get(["nope"]), UnknownIdError, "nope"),
        "k zero": (lambda i: i.search(v, 0), SearchArgumentError, "positive int, got 0"),
        "k negative": (lambda i: i.search(v, -3), SearchArgumentError, "-3"),
        "k float": (lambda i: i.search(v, 2.5), SearchArgumentError, "2.5"),
        "k bool": (lambda i: i.search(v, True), SearchArgumentError, "True"),
        "query dim": (lambda i: i.search(v[:, :8], 3), VectorError, "queries must have shape"),
        "query nan": (lambda i: i.search(nan, 3), VectorError, "queries hold NaN"),
        "unknown field": (
            lambda i: i.search(v, 3, filter={"colour": "red"}),
            UnknownFieldError,
            "unknown field 'colour'; known fields: 'category', 'image', 'rare', 'title'",
        ),
        "filter not mapping": (lambda i: i.search(v, 3, filter=["Bags"]), FilterError, "mapping"),
        "filter value dict": (
            lambda i: i.search(v, 3, filter={"category": {"a": 1}}),
            FilterError,
            "str, number or bool",
        ),
        "filter value type": (
            lambda i: i.search(v, 3, filter={"category": 3}),
            FilterError,
            "must be a str",
        ),
    }


@pytest.mark.parametrize("case", [c for c, v in _bad_calls(np.zeros((602, 32))).items() if v])
def test_bad_input_is_refused_and_changes_nothing(unchanging, vectors, queries, case):
    call, error, match = _bad_calls(vectors)[case]
    before = _snapshot(unchanging, queries)
    with pytest.raises(error, match=match) as info:
        call(unchanging)
    assert isinstance(info.value, IndexUsageError)
    assert isinstance(info.value, (ValueError, KeyError))
    assert _snapshot(unchanging, queries) == before


def test_error_messages_read_plainly():
    err = UnknownIdError(["a", "b"])
    assert str(err) == "2 unknown id(s): 'a', 'b'" and isinstance(err, KeyError)
    many = UnknownIdError([f"x{i}" for i in range(9)])
    assert "(and 4 more)" in str(many)


def test_search_on_empty_index(queries):
    index = create_index("flat", DIM)
    with pytest.raises(EmptyIndexError, match="empty index"):
        index.search(queries, 5)
    with pytest.raises(UnknownFieldError, match="no metadata was added"):
        index.search(queries, 5, filter={"category": "Bags"})


def test_deleted_ids_can_be_added_again(index, vectors):
    index.add(["p000001"], vectors[:1])
    assert "p000001" in index


def test_storage_failure_during_add_rolls_back(vectors, products, queries, monkeypatch):
    from referred.index.vectors import VectorStore

    ids, meta = products
    index = create_index("flat", DIM)
    index.add(ids[:500], vectors[:500], meta[:500])
    before = _snapshot(index, queries)

    def boom(self, v):
        raise MemoryError("no room")

    monkeypatch.setattr(VectorStore, "append", boom)
    with pytest.raises(MemoryError):
        index.add(["new"], vectors[:1], [{"category": "Bags", "colour": "red"}])
    monkeypatch.undo()
    assert _snapshot(index, queries) == before and "new" not in index
    index.add(["new"], vectors[:1])  # and the index still works
    assert index.search(vectors[:1], 1).ids[0, 0] in ("new", ids[0])


def test_index_package_imports_no_torch_or_higher_layers():
    """``referred.index`` is arrays in, arrays out: it must not import torch or the model."""
    root = Path(__file__).resolve().parents[2] / "src" / "referred" / "index"
    banned = (
        "torch",
        "referred.model",
        "referred.search",
        "referred.web",
        "referred.catalog",
        "referred.train",
        "referred.cli",
    )
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] == "torch" or n.startswith(banned)]
            assert not bad, f"{path.name} imports {bad}"


def test_empty_batches_are_no_ops(index, queries):
    before = _snapshot(index, queries)
    index.add([], np.empty((0, DIM), dtype=np.float32))
    index.upsert([], np.empty((0, DIM), dtype=np.float32), [])
    index.delete([])
    scores, ids = index.search(np.empty((0, DIM), dtype=np.float32), 3)
    assert scores.shape == ids.shape == (0, 3)
    assert _snapshot(index, queries) == before
