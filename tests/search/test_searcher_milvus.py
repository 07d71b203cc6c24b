"""The Searcher on a Milvus Lite catalog built by ``build_catalog_index`` (skips without
pymilvus / milvus-lite: ``pip install 'referred[milvus]'``)."""

from __future__ import annotations

import pytest

import referred
from referred.catalog import build_catalog_index
from referred.index import load_index
from referred.search import Searcher
from tests.catalog.test_catalog_build import write_catalog
from tests.search.test_searcher import CATS, photo

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


def test_build_and_search_a_milvus_lite_catalog(tmp_path):
    model = referred.create_model("tiny", categories=CATS, seed=0)
    model.save_pretrained(tmp_path / "m")
    write_catalog(tmp_path / "cat.parquet", n=12)
    spec = f"milvus:{tmp_path / 'catalog.db'}"
    report = build_catalog_index(
        model,
        tmp_path / "idx",
        source=tmp_path / "cat.parquet",
        spec=spec,
        model_ref=str(tmp_path / "m"),
        progress=False,
    )
    assert report.count == 12 and report.recall_at_10 == pytest.approx(1.0)
    searcher = Searcher.open(tmp_path / "idx")
    assert searcher.model_matches_index is True and len(searcher) == 12

    flat = Searcher(model, _flat_copy(model, report.embeddings, tmp_path))
    for kw in ({}, {"category": "Feet"}, {"filter": {"category": "Head"}}):
        got = searcher.search(photo(4), k=4, **kw)
        want = flat.search(photo(4), k=4, **kw)
        assert [h.id for h in got] == [h.id for h in want]
        assert got[0].metadata == want[0].metadata
    looks = searcher.shop_the_look(photo(4), k=2)
    assert all({h.metadata["category"] for h in hits} == {c} for c, hits in looks.items())
    like = searcher.more_like_this("s1", k=3)
    assert "s1" not in [h.id for h in like] and len(like) == 3
    assert searcher.product("s1")["title"] == "thing 1"

    with pytest.raises(ValueError, match="already holds 12 products"):
        build_catalog_index(model, tmp_path / "again", embeddings=report.embeddings, spec=spec)


def _flat_copy(model, embeddings, tmp_path):
    build_catalog_index(
        model, tmp_path / "flat", embeddings=embeddings, source=tmp_path / "cat.parquet"
    )
    return load_index(tmp_path / "flat")
