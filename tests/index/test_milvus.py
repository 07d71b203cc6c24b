"""The milvus backend: filter translation always; the backend itself only with pymilvus.

The backend tests run against Milvus Lite (a local file) and skip cleanly when ``pymilvus`` or
``milvus-lite`` is not installed: ``pip install 'referred[milvus]'`` to run them.
"""

from __future__ import annotations

import numpy as np
import pytest

from referred.index import (
    DuplicateIdError,
    FilterError,
    UnknownFieldError,
    UnknownIdError,
    create_index,
    load_index,
)
from referred.index.milvus_index import filter_expression


@pytest.mark.parametrize(
    ("flt", "expr"),
    [
        ({"category": "Bags"}, 'category == "Bags"'),
        ({"category": ["Bags", "Feet"]}, 'category in ["Bags", "Feet"]'),
        ({"price": 10, "sale": True}, "price == 10 and sale == true"),
        ({"title": 'say "hi"\\'}, 'title == "say \\"hi\\"\\\\"'),
        ({"brand": ("a",), "category": "Head"}, 'brand in ["a"] and category == "Head"'),
        ({"price": np.float64(2.5)}, "price == 2.5"),
    ],
)
def test_filter_expression(flt, expr):
    assert filter_expression(flt) == expr


def test_filter_expression_refuses_bad_fields_and_values():
    with pytest.raises(UnknownFieldError, match="'colour'; known fields: 'category'"):
        filter_expression({"colour": "red"}, known=["category"])
    with pytest.raises(FilterError, match="cannot filter on field"):
        filter_expression({"a or 1==1": "x"})
    with pytest.raises(FilterError, match="str, number or bool"):
        filter_expression({"category": None})


def test_missing_pymilvus_gives_an_install_hint(monkeypatch):
    import sys

    from referred.index import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingDependencyError, match=r"referred\[milvus\]"):
        create_index("milvus:./never.db", 8)


@pytest.fixture
def lite(tmp_path, vectors, products):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    ids, meta = products
    index = create_index(f"milvus:{tmp_path / 'catalog.db'}", vectors.shape[1])
    index.add(ids[:500], vectors[:500], meta[:500])
    return index


def test_milvus_lite_end_to_end(lite, tmp_path, vectors, products, queries):
    ids, meta = products
    assert len(lite) == 500 and ids[3] in lite
    _, got = lite.search(queries[:3], 5)
    want = np.argsort(-(queries[:3] @ vectors[:500].T), axis=1)[:, :5]
    assert (got == np.asarray(ids, dtype=object)[want]).mean() > 0.9
    _, got = lite.search(queries[:3], 5, filter={"rare": True})
    rare = {i for i, m in zip(ids[:500], meta[:500]) if m["rare"]}
    assert set(got.ravel()) <= rare | {""} and (got[:, : min(5, len(rare))] != "").all()
    with pytest.raises(DuplicateIdError, match="upsert"):
        lite.add([ids[0]], vectors[:1])
    lite.upsert([ids[0]], queries[:1], [{"category": "Feet"}])
    assert lite.search(queries[:1], 1).ids[0, 0] == ids[0]
    lite.delete([ids[1]])
    with pytest.raises(UnknownIdError):
        lite.delete([ids[1]])
    with pytest.raises(UnknownFieldError):
        lite.search(queries[:1], 1, filter={"colour": "red"})
    lite.save(tmp_path / "manifest-only")
    again = load_index(tmp_path / "manifest-only")
    assert len(again) == 499 and again.get([ids[0]]).metadata[0]["category"] == "Feet"
