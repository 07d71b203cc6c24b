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
    SpecError,
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


def test_milvus_lite_replaces_metadata_on_upsert_and_keeps_info(lite, tmp_path, vectors, products):
    ids, meta = products
    assert lite.get([ids[2]]).metadata[0]["title"] == meta[2]["title"]
    lite.upsert([ids[2]], vectors[2], [{"category": "Head"}])
    # Milvus Lite's own upsert would merge the old title in: the backend deletes, then inserts
    assert lite.get([ids[2]], vectors=False).metadata == [{"id": ids[2], "category": "Head"}]
    lite.upsert([ids[2], "new"], vectors[2:4], [{"category": "Feet"}, {"category": "Bags"}])
    assert len(lite) == 501 and "new" in lite
    np.testing.assert_allclose(lite.get(["new", ids[2]]).vectors, vectors[[3, 2]], atol=1e-6)
    lite.info = {"model": {"path": "m/"}, "recall_at_10": 0.99}
    lite.save(tmp_path / "saved")
    again = load_index(tmp_path / "saved")
    assert again.info == lite.info and "title" in again.fields
    assert type(again).thread_safe_search is False


def test_milvus_lite_filters_and_limits(lite, vectors, products, queries):
    from referred.index import EmptyIndexError, SearchArgumentError

    ids, meta = products
    feet = {i for i, m in zip(ids[:500], meta[:500]) if m["category"] in ("Feet", "Head")}
    got = lite.search(queries[:4], 20, filter={"category": ["Feet", "Head"]}).ids
    assert set(got.ravel()) <= feet and (got != "").all()
    got = lite.search(queries[:2], 5, filter={"category": "Bags", "rare": False}).ids
    assert all(meta[ids.index(i)]["category"] == "Bags" for i in got.ravel())
    assert (lite.search(queries[:1], 3, filter={"category": []}).ids == "").all()
    with pytest.raises(SearchArgumentError, match="at most 16384"):
        lite.search(queries[:1], 20000)
    empty = create_index(f"milvus:{lite.uri}", vectors.shape[1], collection="empty")
    with pytest.raises(EmptyIndexError):
        empty.search(queries[:1], 3)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ef_search": 0}, "ef_search must be an int >= 1, got 0"),
        ({"ef_search": "64"}, "ef_search must be an int >= 1, got '64'"),
        ({"exact_filter_rows": -1}, "exact_filter_rows must be an int >= 0"),
        ({"exact_filter_rows": 20000}, "below 16384 .* got 20000"),
    ],
)
def test_bad_search_settings_are_refused(tmp_path, options, match):
    pytest.importorskip("pymilvus")
    with pytest.raises(SpecError, match=match):
        create_index(f"milvus:{tmp_path / 'never.db'}", 8, **options)
    assert not (tmp_path / "never.db").exists()
