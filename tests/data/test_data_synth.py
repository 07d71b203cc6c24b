"""The synthetic dataset: deterministic, valid, readable, and the condition decides."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from referred.categories import LRVSF_CATEGORIES
from referred.data import check_dataset, load_bootstrap_ids, open_dataset
from referred.data.synth import OUTFITS_FILE, SynthConfig, write_synthetic_dataset
from referred.data.synth.outfits import compatible, outfit_categories, partition, plan_outfits
from referred.data.synth.render import RenderSettings, render_outfits

TINY = SynthConfig(products=20, distractors=4, size=24, seed=7)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "a", TINY)
    write_synthetic_dataset(tmp_path / "b", TINY)
    write_synthetic_dataset(
        tmp_path / "c", SynthConfig(products=20, distractors=4, size=24, seed=8)
    )
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a["TRAIN/00000.tar"] != c["TRAIN/00000.tar"]


def test_rendering_does_not_depend_on_how_work_is_chunked() -> None:
    outfits = plan_outfits(TINY)[:4]
    settings = RenderSettings.of(TINY)
    whole = render_outfits((settings, outfits))
    pieces = render_outfits((settings, outfits[:1])) + render_outfits((settings, outfits[1:]))
    assert whole == pieces


def test_worker_count_does_not_change_the_bytes(tmp_path: Path) -> None:
    """One process or two (a fork server, about a second): the same files, held-out set and
    tables included."""
    write_synthetic_dataset(tmp_path / "one", TINY)
    two = SynthConfig(products=20, distractors=4, size=24, seed=7, workers=2)
    write_synthetic_dataset(tmp_path / "two", two)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_synth_output_passes_check(synth_root: Path, synth_config: SynthConfig) -> None:
    report = check_dataset(synth_root)
    assert report.ok, [str(p) for p in report.stats.problems]
    assert report.products == synth_config.split_sizes()
    assert report.distractors == {"valid": 12, "test": 12}


def test_synth_reads_back_through_the_training_reader(
    synth_root: Path, synth_config: SynthConfig
) -> None:
    ds = open_dataset(synth_root)
    assert ds.layout == "training"
    assert len(list((synth_root / "TRAIN").glob("*.tar"))) == 3  # 48 products, 20 a shard
    for split in ds.splits:
        for product in ds.products(split):
            assert product.category in LRVSF_CATEGORIES
            assert len(product.simple) == 1 and 1 <= len(product.complex) <= 3
            assert product.captions and product.captions[0].split()[-1]
            assert product.simple[0].open().size == (synth_config.size, synth_config.size)
    distractors = list(ds.distractors("test"))
    assert len(distractors) == 12 and all(d.category in LRVSF_CATEGORIES for d in distractors)


def test_every_complex_image_shows_the_target_and_two_to_four_others(synth_root: Path) -> None:
    scenes = pq.read_table(synth_root / OUTFITS_FILE).to_pylist()
    by_url = {s["URL"]: s for s in scenes}
    complex_rows = pq.read_table(synth_root / "products_complex_metadata.parquet").to_pylist()
    users: dict[str, set[int]] = defaultdict(set)
    for row in complex_rows:
        scene = by_url[row["URL"]]
        assert row["PRODUCT_ID"] in scene["PRODUCT_IDS"]
        assert 3 <= len(scene["PRODUCT_IDS"]) <= 5
        cats = scene["CATEGORIES"]
        assert len(set(cats)) == len(cats)
        assert not ("Whole Body" in cats and {"Upper Body", "Lower Body"} & set(cats))
        users[row["URL"]].add(row["PRODUCT_ID"])
    # each scene is the complex image of every product visible in it: shared, not per target
    for url, scene in by_url.items():
        assert users[url] == set(scene["PRODUCT_IDS"])
    assert {s["TYPE"] for s in scenes} <= {"COMPLEX", "PARTIAL_COMPLEX"}


def test_categories_recorded_in_scenes_match_products(synth_root: Path) -> None:
    simple = pq.read_table(synth_root / "products_simple_metadata.parquet").to_pylist()
    category = {r["PRODUCT_ID"]: r["CATEGORY"] for r in simple}
    for scene in pq.read_table(synth_root / OUTFITS_FILE).to_pylist():
        assert [category[p] for p in scene["PRODUCT_IDS"]] == scene["CATEGORIES"]


def test_metadata_has_the_hugging_face_columns(synth_root: Path) -> None:
    expected = ["URL", "WIDTH", "HEIGHT", "punsafe", "pwatermark", "language", "TEXT",
                "ENG_TEXT", "TYPE", "PRODUCT_ID", "INDEX_SRC", "SPLIT", "CATEGORY",
                "blip2_caption1", "blip2_caption2"]  # fmt: skip
    for name in ("products_simple_metadata", "products_complex_metadata",
                 "distractors_test_metadata"):  # fmt: skip
        assert pq.read_schema(synth_root / f"{name}.parquet").names == expected
    splits = set(
        pq.read_table(synth_root / "products_complex_metadata.parquet")["SPLIT"].to_pylist()
    )
    assert splits == {"train", "val_query", "test_query"}


def test_bootstrap_has_the_published_shape(synth_root: Path) -> None:
    subsets = load_bootstrap_ids(synth_root / "bootstrap_IDs.pkl")
    assert sorted(subsets) == ["dist_12_subsets", "test_subsets"]
    test_ids = {
        r["PRODUCT_ID"]
        for r in pq.read_table(synth_root / "products_simple_metadata.parquet").to_pylist()
        if r["SPLIT"] == "test_gallery"
    }
    assert len(subsets["test_subsets"]) == 10
    assert set(np.concatenate(subsets["test_subsets"]).tolist()) <= test_ids
    assert all(a.shape == (12,) and a.max() < 12 for a in subsets["dist_12_subsets"])


def test_outfit_building_blocks() -> None:
    rng = np.random.default_rng(0)
    for n in (3, 4, 5, 6, 7, 8, 11, 100):
        sizes = partition(n, rng)
        assert sum(sizes) == n and all(3 <= s <= 5 for s in sizes)
    for k in (3, 4, 5):
        cats = outfit_categories(k, rng)
        assert len(cats) == k
        assert all(compatible(c, [o for o in cats if o != c]) for c in cats)
    assert not compatible("Whole Body", ["Upper Body"])


def test_bad_configs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="products must be at least 9"):
        SynthConfig(products=5)
    with pytest.raises(ValueError, match="size must be between"):
        SynthConfig(size=4)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty; pass --overwrite"):
        write_synthetic_dataset(tmp_path / "x", TINY)
