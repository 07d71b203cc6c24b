"""Metadata columns and filter semantics (equality, membership, AND, nulls, input forms)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from referred.index import FilterError, MetadataError, create_index

DIM = 4


def _index(meta, n=None):
    n = n or len(meta)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = create_index("flat", DIM)
    index.add([f"i{j}" for j in range(n)], x, meta)
    return index, x


def _found(index, flt) -> set[str]:
    q = np.ones((1, DIM), dtype=np.float32) / 2
    return set(index.search(q, 100, filter=flt).ids[0]) - {""}


META = [
    {"category": "Bags", "price": 10, "brand": "a"},
    {"category": "Feet", "price": 20.5},
    {"category": "Bags", "price": 30, "brand": "b", "tags": ["x", "y"]},
    {"category": "Head"},
    {"category": "Feet", "price": 10, "brand": "a", "sale": True},
]


@pytest.mark.parametrize(
    ("flt", "want"),
    [
        ({"category": "Bags"}, {"i0", "i2"}),
        ({"category": ["Bags", "Head"]}, {"i0", "i2", "i3"}),
        ({"category": ("Feet",)}, {"i1", "i4"}),
        ({"category": np.array(["Head"])}, {"i3"}),
        ({"category": "Feet", "brand": "a"}, {"i4"}),  # fields are ANDed
        ({"price": 10}, {"i0", "i4"}),
        ({"price": [10.0, 20.5]}, {"i0", "i1", "i4"}),  # ints and floats compare as numbers
        ({"price": np.int64(30)}, {"i2"}),
        ({"brand": ["a", "b"]}, {"i0", "i2", "i4"}),  # rows without a brand never match
        ({"sale": True}, {"i4"}),
        ({"category": []}, set()),
        ({"category": "Nope"}, set()),
        ({}, {"i0", "i1", "i2", "i3", "i4"}),
    ],
)
def test_filter_semantics(flt, want):
    index, _ = _index(META)
    assert _found(index, flt) == want


def test_filters_track_deletes_and_upserts():
    index, x = _index(META)
    assert _found(index, {"category": "Bags"}) == {"i0", "i2"}  # cached mask
    index.delete(["i0"])
    assert _found(index, {"category": "Bags"}) == {"i2"}
    index.upsert(["i3"], x[3:4], [{"category": "Bags"}])
    assert _found(index, {"category": "Bags"}) == {"i2", "i3"}
    index.add(["new"], x[:1], [{"category": "Bags", "colour": "red"}])
    assert _found(index, {"colour": "red"}) == {"new"}
    assert index.fields == ("category", "price", "brand", "tags", "sale", "colour")


def test_filter_on_list_field_is_refused():
    index, _ = _index(META)
    with pytest.raises(FilterError, match="'tags' holds list"):
        _found(index, {"tags": "x"})
    with pytest.raises(FilterError, match="must be a number"):
        _found(index, {"price": "10"})
    with pytest.raises(FilterError, match="must be a bool"):
        _found(index, {"sale": 1})


def test_metadata_from_dataframe_and_arrow_and_get():
    df = pd.DataFrame({"category": ["Bags", "Feet"], "title": ["tote", "boot"], "id": ["i0", "i1"]})
    index, x = _index(df)
    index.add(["i2"], x[:1], pa.table({"category": ["Head"], "image": ["s3://b/i2.jpg"]}))
    assert index.get(["i2", "i0"]).metadata == [
        {"id": "i2", "category": "Head", "image": "s3://b/i2.jpg"},
        {"id": "i0", "category": "Bags", "title": "tote"},
    ]
    assert _found(index, {"category": ["Head", "Feet"]}) == {"i1", "i2"}


def test_metadata_values_survive_save_and_load(tmp_path):
    from referred.index import load_index

    index, _ = _index(META)
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert loaded.get(["i2"]).metadata == [{"id": "i2", **META[2]}]
    assert _found(loaded, {"price": 10}) == {"i0", "i4"}


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ("Bags", "sequence of mappings"),
        ([{"category": "Bags"}, "Feet"], r"metadata\[1\] must be a mapping"),
        ([{"": 1}, {"": 2}], "non-empty str"),
    ],
)
def test_bad_metadata_shapes(meta, match):
    index, x = _index(None, n=3)
    with pytest.raises(MetadataError, match=match):
        index.add(["a", "b"], x[:2], meta)
    assert len(index) == 3
