"""`build_catalog_index(dedup=...)` / `referred index build --dedup`: near-duplicates are not
indexed, either found in the build or taken from the kept.txt of `referred data dedup`."""

from __future__ import annotations

import json

import pytest

import referred
from referred.catalog import build_catalog_index
from referred.data.dedup import DedupConfig
from referred.index import load_index
from referred.index.errors import UnknownIdError
from tests.data.test_dedup import jpeg, smooth_image
from tests.search.test_searcher import CATS


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", categories=CATS, seed=0)


@pytest.fixture
def catalog(tmp_path):
    root = tmp_path / "shop"
    root.mkdir()
    for k in range(6):
        (root / f"item{k}.jpg").write_bytes(jpeg(smooth_image(k)))
    (root / "item2_again.jpg").write_bytes(jpeg(smooth_image(2), quality=45))  # re-encoded
    return root


def test_build_leaves_the_reencoded_copy_out(model, catalog, tmp_path):
    pytest.importorskip("faiss")
    out = tmp_path / "shop.index"
    config = DedupConfig(methods=("phash", "embedding"))
    report = build_catalog_index(model, out, source=catalog, progress=False, dedup=config)
    assert report.count == 6
    index = load_index(out)
    assert len(index) == 6
    assert index.get(["item2"], vectors=False).metadata[0]["id"] == "item2"
    info = index.info["dedup"]
    assert info["dropped"] == {"product": 1, "distractor": 0}
    dropped = (tmp_path / "shop.index.work" / "dedup" / "dropped.tsv").read_text()
    assert dropped.splitlines()[1] == "product\titem2_again\titem2"
    assert json.loads((tmp_path / "shop.index.work" / "dedup" / "summary.json").read_text())


def test_build_indexes_only_a_kept_list(model, catalog, tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("item0\nitem3\n\nitem5\n")
    report = build_catalog_index(model, tmp_path / "ix", source=catalog, progress=False, dedup=kept)
    assert report.count == 3
    assert report.dedup["dropped"] == 4
    index = load_index(tmp_path / "ix")
    assert len(index) == 3
    got = index.get(["item0", "item3", "item5"], vectors=False).metadata
    assert [m["id"] for m in got] == ["item0", "item3", "item5"]
    with pytest.raises(UnknownIdError):
        index.get(["item1"])


def test_phash_without_images_is_refused(model, catalog, tmp_path):
    first = build_catalog_index(model, tmp_path / "a", source=catalog, progress=False)
    with pytest.raises(ValueError, match="needs the catalog's images"):
        build_catalog_index(
            model,
            tmp_path / "b",
            embeddings=first.embeddings,
            progress=False,
            dedup=DedupConfig(methods=("phash",)),
        )


def test_cli_index_build_dedup(model, catalog, tmp_path, capsys):
    pytest.importorskip("faiss")
    import referred.cli as cli

    model.save_pretrained(tmp_path / "model")
    argv = ["index", "build", "--model", str(tmp_path / "model"), "--images", str(catalog)]
    assert cli.main([*argv, "--out", str(tmp_path / "ix"), "--no-progress", "--dedup"]) == 0
    out = capsys.readouterr().out
    assert "dedup (phash and embedding): 1 near-duplicates left out, 1 groups" in out
    assert len(load_index(tmp_path / "ix")) == 6
    bad = [*argv, "--out", str(tmp_path / "iy"), "--dedup", str(tmp_path / "nope.txt")]
    assert cli.main(bad) == 2
    assert "--dedup takes the kept.txt of referred data dedup" in capsys.readouterr().err
