"""Building a catalog index for the Searcher: metadata, resume, provenance, recall."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import referred
from referred.catalog import build_catalog_index
from referred.catalog.build import recall_against_exact
from referred.catalog.cache import read_embeddings
from referred.index import SearchResult, load_index
from referred.model import make_config
from referred.search import Searcher
from tests.search.test_searcher import CATS, photo, png


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", categories=CATS, seed=0)


def write_catalog(path, n: int = 6):
    table = pa.table(
        {
            "SKU": [f"s{i}" for i in range(n)],
            "image": [png(i) for i in range(n)],
            "Category": [["bags", "Feet", "head"][i % 3] for i in range(n)],
            "Title": [f"thing {i}" for i in range(n)],
            "Unit Price": [10.5 + i for i in range(n)],
            "brand": ["acme"] * n,
            "url": [f"https://shop.example/{i}.jpg" for i in range(n)],
        }
    )
    pq.write_table(table, path)


def test_parquet_catalog_metadata_resume_and_provenance(model, tmp_path):
    write_catalog(tmp_path / "cat.parquet")
    out = tmp_path / "shop.index"
    report = build_catalog_index(
        model, out, source=tmp_path / "cat.parquet", progress=False, model_ref="my/model"
    )
    assert (report.count, report.embedded, report.recall_at_10) == (6, 6, None)
    assert report.embeddings == tmp_path / "shop.index.work" / "embeddings.parquet"
    index = load_index(out)
    assert index.get(["s4"], vectors=False).metadata[0] == {
        "id": "s4",
        "category": "Feet",
        "title": "thing 4",
        "image": "https://shop.example/4.jpg",
        "unit_price": 14.5,
        "brand": "acme",
        "url": "https://shop.example/4.jpg",
    }
    info = index.info
    assert info["model"]["path"] == "my/model" and info["embedding_dim"] == 64
    assert info["count"] == 6 and info["source"].endswith("cat.parquet")
    searcher = Searcher(model, index)
    assert searcher.model_matches_index is True
    assert searcher.search(photo(4), category="Feet", k=2, filter={"brand": "acme"})

    again = build_catalog_index(model, out, source=tmp_path / "cat.parquet", progress=False)
    assert (again.embedded, again.already_done) == (0, 6)  # resumed from the work dir
    other = referred.create_model("tiny", categories=CATS, seed=9)
    with pytest.raises(ValueError, match="embeddings of another model"):
        build_catalog_index(other, out, source=tmp_path / "cat.parquet", progress=False)


def test_embeddings_file_with_catalog_metadata(model, tmp_path):
    write_catalog(tmp_path / "cat.parquet")
    first = build_catalog_index(
        model, tmp_path / "a", source=tmp_path / "cat.parquet", progress=False
    )
    ids, vectors = read_embeddings(first.embeddings)
    write_catalog(tmp_path / "fewer.parquet", n=4)  # two products left the catalog
    report = build_catalog_index(
        model, tmp_path / "b", embeddings=first.embeddings, source=tmp_path / "fewer.parquet"
    )
    index = load_index(tmp_path / "b")
    assert report.count == len(index) == 4 and "s5" not in index
    assert index.get(["s1"], vectors=False).metadata[0]["title"] == "thing 1"
    np.testing.assert_array_equal(index.get(["s1"]).vectors[0], vectors[ids.index("s1")])
    bare = build_catalog_index(model, tmp_path / "c", embeddings=first.embeddings)
    assert bare.count == 6 and load_index(tmp_path / "c").fields == ()
    arch = {"input_resolution": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2}
    wide = referred.create_model(make_config({**arch, "output_dim": 32}, "none"), seed=0)
    with pytest.raises(ValueError, match="64-d vectors but the model outputs 32-d"):
        build_catalog_index(wide, tmp_path / "d", embeddings=first.embeddings)


def test_approximate_spec_records_recall_and_searcher_open(model, tmp_path):
    pytest.importorskip("faiss")
    write_catalog(tmp_path / "cat.parquet", n=30)
    report = build_catalog_index(
        model,
        tmp_path / "hnsw",
        source=tmp_path / "cat.parquet",
        spec="faiss:HNSW32",
        index_options={"ef_search": 16},
        model_ref=None,
        progress=False,
    )
    assert report.recall_queries == 30 and 0.9 <= report.recall_at_10 <= 1.0
    index = load_index(tmp_path / "hnsw")
    assert index.info["recall_at_10"] == report.recall_at_10 and index.ef_search == 16
    with pytest.raises(ValueError, match="records no model path"):
        Searcher.open(tmp_path / "hnsw")
    model.save_pretrained(tmp_path / "m")
    build_catalog_index(
        model, tmp_path / "flat", embeddings=report.embeddings, model_ref=str(tmp_path / "m")
    )
    opened = Searcher.open(tmp_path / "flat")
    assert opened.model_matches_index is True and len(opened.search(photo(1), k=3)) == 3


class _Answers:
    """A stand-in index returning fixed ids."""

    def __init__(self, ids):
        self.ids = np.asarray(ids, dtype=object)

    def search(self, queries, k):
        return SearchResult(None, self.ids[: len(queries), :k])


def test_recall_against_exact_by_hand():
    # 1-d-like unit vectors on a circle: each product's nearest other products are its
    # neighbours in angle
    angles = np.array([0.0, 0.1, 0.3, 0.6, 1.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    ids = ["a", "b", "c", "d", "e"]
    exact = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "d"], ["d", "c", "e"], ["e", "d", "c"]]
    assert recall_against_exact(_Answers(exact), ids, vectors, k=2) == (1.0, 5)
    # the approximate index finds the query itself and one wrong product: 0 or 1 of 2 right
    wrong = [["a", "e", "b"], ["b", "e", "d"], ["c", "a", "e"], ["d", "a", "b"], ["e", "a", "b"]]
    recall, n = recall_against_exact(_Answers(wrong), ids, vectors, k=2)
    assert n == 5 and recall == pytest.approx((1 / 2 + 0 + 0 + 0 + 0) / 5)


def test_build_refuses_bad_input(model, tmp_path):
    with pytest.raises(ValueError, match="give a catalog source"):
        build_catalog_index(model, tmp_path / "x")
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        build_catalog_index(model, tmp_path / "x", source=tmp_path, engine="spark")
    with pytest.raises(FileNotFoundError, match="no such catalog"):
        build_catalog_index(model, tmp_path / "x", source=tmp_path / "nope", progress=False)
