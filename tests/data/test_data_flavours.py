"""Readers accept metadata as real tools write it: pandas 2 and 3, pyarrow, polars; string,
large_string, dictionary and integer index labels; all-null columns (committed fixtures)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from referred.data import check_dataset, open_dataset
from referred.data.files import id_array, label_values, plain_array
from tests.data.flavours import FLAVOURS, MANIFEST, NAMES, layout

PRODUCTS = {"301": "Upper Body", "302": "Lower Body", "303": "Bags", "304": "Feet"}
DISTRACTOR_CATEGORIES = ["Outwear", "Whole Body", "Neck", None, "Hands"]


def test_fixtures_cover_every_writer_and_type():
    writers = [entry["writer"] for entry in MANIFEST.values()]
    for tool in ("pyarrow ", "pandas 2.", "pandas 3.", "polars "):
        assert any(w.startswith(tool) for w in writers), tool
    types = [t for entry in MANIFEST.values() for t in entry["types"].items()]
    index = {v for k, v in types if k == "distractors_metadata.__index_level_0__"}
    assert {"string", "large_string", "int64"} <= index
    assert "dictionary<values=string, indices=int32, ordered=0>" in index
    assert any(v.startswith("dictionary") and "int8" in v for v in index)  # pandas categorical
    ids = {v for k, v in types if k.endswith(".PRODUCT_ID")}
    assert {"int64", "string", "large_string"} <= ids and any(v.startswith("dict") for v in ids)
    assert any(v == "null" for _, v in types)  # all-null columns
    stored = "distractors_metadata.__index_level_0__"
    no_index = {n for n, e in MANIFEST.items() if stored not in e["types"]}
    assert {"pyarrow-null", "polars-default", "pandas2-range", "pandas3-range"} <= no_index


@pytest.mark.parametrize("flavour", NAMES)
def test_files_have_the_types_the_manifest_records(flavour):
    for key, kind in MANIFEST[flavour]["types"].items():
        name, column = key.split(".", 1)
        schema = pq.read_schema(FLAVOURS / flavour / f"{name}.parquet")
        assert str(schema.field(column).type) == kind, key


@pytest.mark.parametrize("kind", ["training", "hf"])
@pytest.mark.parametrize("flavour", NAMES)
def test_every_flavour_reads_the_same(flavour, kind, tmp_path):
    root = layout(flavour, kind, tmp_path)
    report = check_dataset(root)
    assert report.ok, report.stats.problems
    assert report.products == {"test": 4} and report.distractors == {"test": 5}
    assert report.stats.errors == report.stats.warnings == 0
    ds = open_dataset(root)
    products = {p.product_id: p.category for p in ds.products("test")}
    assert products == PRODUCTS
    distractors = list(ds.distractors("test"))
    assert [d.distractor_id for d in distractors] == MANIFEST[flavour]["labels"]
    assert [d.category for d in distractors] == DISTRACTOR_CATEGORIES


@pytest.mark.parametrize("flavour", NAMES)
def test_data_check_cli_on_every_flavour(flavour, tmp_path, run_cli):
    code, out, err = run_cli("data", "check", layout(flavour, "training", tmp_path))
    assert code == 0, err
    assert "0 errors, 0 warnings: usable" in out and "distractors read: test 5" in out


def test_column_normalisation_by_arrow_type():
    words = pa.array(["b", None, "a"])
    for array in (
        words.dictionary_encode(),
        words.cast(pa.large_string()),
        words.cast(pa.string_view()),
        pa.chunked_array([words[:1], words[1:]]),
    ):
        plain = plain_array(array)
        assert plain.type == pa.string() and plain.to_pylist() == ["b", None, "a"]
    assert plain_array(pa.array([1, 2], pa.int16())).type == pa.int64()
    assert plain_array(pa.nulls(2)).type == pa.null()
    # pandas writes an integer id column with a gap as float64: the ids stay integers
    assert id_array(pa.array([301.0, None, 302.0])).to_pylist() == [301, None, 302]
    assert id_array(pa.array([1.5])).type == pa.string()
    assert id_array(pa.nulls(2)).type == pa.string()
    assert label_values(pa.array([7, 3], pa.uint32())).dtype == np.int64
    labels = label_values(pa.array(["d1", None]).dictionary_encode())
    assert labels.tolist() == ["d1", ""]
