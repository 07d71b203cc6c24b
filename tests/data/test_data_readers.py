"""Each reader streams its committed fixture into the expected records."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from referred.data import (
    DataFileError,
    ImageType,
    ReadStats,
    detect_layout,
    open_dataset,
)
from referred.data.hf import HFMetadataDataset


def _ids(products) -> list[str]:
    return [p.product_id for p in products]


def test_training_layout_products(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "training")
    assert ds.layout == "training"
    assert ds.splits == ("train", "valid", "test")
    stats = ReadStats()
    train = list(ds.products("train", stats=stats, verify=True))
    assert _ids(train) == ["101", "102", "103"]
    p102 = train[1]
    assert p102.category == "Feet" and p102.split == "train"
    assert [im.type for im in p102.simple] == [ImageType.SIMPLE]
    assert [im.type for im in p102.complex] == [ImageType.COMPLEX, ImageType.PARTIAL_COMPLEX]
    assert p102.simple[0].url == "https://example.com/img/s102.jpg"
    assert p102.simple[0].open().size == (8, 8)
    assert p102.captions == ("a product of category feet",)
    assert stats.counts["products"] == 3 and stats.errors == 0
    assert _ids(ds.products("validation")) == ["201", "202"]


def test_training_layout_test_split_joins_metadata(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "training")
    test = {p.product_id: p for p in ds.products("test")}
    assert set(test) == {"301", "302"}
    assert test["301"].category == "Upper Body"
    # one scene shared by both products, stored once in TEST/prods.parquet
    assert test["301"].complex[0].url == test["302"].complex[0].url
    assert test["301"].complex[0].read_bytes() == test["302"].complex[0].read_bytes()


def test_training_layout_distractors(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "training")
    valid = list(ds.distractors("valid"))
    assert [(d.distractor_id, d.category) for d in valid] == [("0", "Bags"), ("1", "Hands")]
    test = list(ds.distractors("test"))
    assert [(d.distractor_id, d.category) for d in test] == [("0", "Outwear"), ("1", "Whole Body")]
    assert test[0].image.url == "https://example.com/img/dt0.jpg"


def test_training_layout_skips_and_counts_bad_items(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "training_corrupt")
    stats = ReadStats()
    train = {p.product_id: p for p in ds.products("train", stats=stats, verify=True)}
    assert set(train) == {"101", "102", "104"}
    assert len(train["102"].complex) == 1  # the truncated JPEG was dropped
    assert stats.problem_counts == {
        "corrupt-image": 1,
        "missing-simple": 1,
        "unknown-category": 1,
        "truncated-tar": 1,
    }
    by_kind = {p.kind: p for p in stats.problems}
    assert by_kind["corrupt-image"].item == "102"
    assert by_kind["missing-simple"].item == "103"
    assert by_kind["truncated-tar"].file == "TRAIN/00002.tar"
    # without decoding, the truncated JPEG passes (readers never decode unless asked)
    assert len({p.product_id: p for p in ds.products("train")}["102"].complex) == 2


def test_hf_metadata_groups_unsorted_rows(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "hf")
    assert ds.layout == "hf"
    stats = ReadStats()
    train = list(ds.products("train", stats=stats))
    assert _ids(train) == ["101", "102", "103"]  # sorted; 104 has no complex image
    assert stats.problem_counts == {"missing-complex": 1}
    assert stats.problems[0].item == "104"
    p102 = train[1]
    assert len(p102.simple) == 1 and len(p102.complex) == 2
    assert not p102.simple[0].has_bytes
    with pytest.raises(ValueError, match="referred data prepare"):
        p102.simple[0].read_bytes()


def test_hf_metadata_bounded_memory_gives_the_same_products(fixtures: Path) -> None:
    whole = list(HFMetadataDataset(fixtures / "hf").products("train"))
    ranged = list(HFMetadataDataset(fixtures / "hf", max_rows=1).products("train"))
    assert whole == ranged


def test_hf_metadata_distractors(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "hf")
    test = list(ds.distractors("test"))
    assert [(d.distractor_id, d.category) for d in test] == [("0", "Outwear"), ("1", "Whole Body")]


def test_hf_metadata_without_product_id_is_unusable(tmp_path: Path) -> None:
    base = tmp_path / "data" / "train"
    base.mkdir(parents=True)
    for name in ("products_simple_metadata.parquet", "products_complex_metadata.parquet"):
        pq.write_table(pa.table({"URL": ["u"], "TYPE": ["SIMPLE"]}), base / name)
    with pytest.raises(DataFileError, match="PRODUCT_ID"):
        list(open_dataset(tmp_path).products("train"))


def test_zenodo(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "zenodo")
    assert ds.layout == "zenodo"
    products = list(ds.products("test", verify=True))
    assert _ids(products) == ["0", "1", "2"]
    assert [p.category for p in products] == ["Upper Body", "Lower Body", "Neck"]
    assert products[0].captions == ("a caption of 301",)
    assert products[0].complex[0].open().size == (8, 8)
    dists = list(ds.distractors("test"))
    assert [d.distractor_id for d in dists] == ["dist_0:0", "dist_0:1"]


def test_catalog_folder(fixtures: Path) -> None:
    ds = open_dataset(fixtures / "catalog")
    assert ds.layout == "catalog"
    got = [(p.product_id, p.category) for p in ds.products("catalog", verify=True)]
    assert got == [("Bags/tote", "Bags"), ("Lower_Body/skirts/red", "Lower Body"),
                   ("misc/thing", None)]  # fmt: skip


def test_catalog_table(fixtures: Path) -> None:
    stats = ReadStats()
    products = list(open_dataset(fixtures / "catalog.csv").products(stats=stats, verify=True))
    assert [(p.product_id, p.category, p.captions) for p in products] == [
        ("A1", "Bags", ("Red tote bag",)),
        ("A2", "Lower Body", ("Red skirt",)),
        ("A3", None, ("Mystery item",)),
    ]
    assert stats.warnings == 1 and stats.problems[0].kind == "unknown-category"


def test_catalog_parquet_with_bytes(tmp_path: Path, fixtures: Path) -> None:
    data = (fixtures / "catalog" / "Bags" / "tote.jpg").read_bytes()
    table = pa.table({"Item_ID": ["x1", "x2"], "IMAGE": [data, b"broken"], "cat": ["Bags", None]})
    pq.write_table(table, tmp_path / "items.parquet")
    stats = ReadStats()
    products = list(open_dataset(tmp_path / "items.parquet").products(stats=stats, verify=True))
    assert [(p.product_id, p.category) for p in products] == [("x1", "Bags")]
    assert stats.problems[0].item == "x2" and stats.problems[0].kind == "corrupt-image"


def test_catalog_table_without_image_column_names_accepted_columns(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("id,title\n1,hat\n")
    with pytest.raises(DataFileError, match=r"no image column; accepted names.*image_path"):
        list(open_dataset(tmp_path / "items.csv").products())


@pytest.mark.parametrize(
    ("name", "layout"),
    [("training", "training"), ("hf", "hf"), ("zenodo", "zenodo"), ("catalog", "catalog"),
     ("catalog.csv", "catalog")],
)  # fmt: skip
def test_detect_layout(fixtures: Path, name: str, layout: str) -> None:
    assert detect_layout(fixtures / name) == layout


def test_detect_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        detect_layout(tmp_path / "absent")
    with pytest.raises(ValueError, match="expected one of: training layout"):
        detect_layout(tmp_path)


def test_unknown_split_lists_available(fixtures: Path) -> None:
    with pytest.raises(ValueError, match="available: test"):
        list(open_dataset(fixtures / "zenodo").products("train"))
