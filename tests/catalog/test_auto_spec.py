"""``--spec auto``: the spec for a catalog's size and memory budget, then tuned (pure choice by
hand; a build through it end to end)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import referred
from referred import cli
from referred.catalog import build_catalog_index
from referred.index import auto, load_index
from referred.index.auto import choose_spec, nlist_for, parse_size
from referred.index.errors import SpecError
from referred.index.estimate import estimate_faiss


@pytest.mark.parametrize(
    ("text", "size"),
    [("1.5GB", 1_500_000_000), ("800MiB", 800 * 2**20), ("2e9", 2_000_000_000),
     (" 64 kb ", 64_000), (1024, 1024), ("3g", 3_000_000_000)],
)  # fmt: skip
def test_sizes_parse_in_every_spelling(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "1.5 parsecs", "-2GB", "0", "", "nan"])
def test_bad_sizes_name_what_is_accepted(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def test_small_catalogs_are_exact_and_large_ones_fit_the_budget():
    assert choose_spec(1_000, 512).spec == "flat"
    assert choose_spec(auto.EXACT_UP_TO, 512).spec == "flat"
    assert choose_spec(auto.EXACT_UP_TO + 1, 512).spec == "faiss:HNSW32"  # no budget: fastest
    n, d = 2_000_000, 512
    assert nlist_for(n) == 4096 and nlist_for(100_000) == 1024 and nlist_for(10) == 16
    hnsw = estimate_faiss("HNSW32", n, d, store_vectors=False)
    sq8 = estimate_faiss("IVF4096,SQ8", n, d, store_vectors=False)
    sq6 = estimate_faiss("IVF4096,SQ6", n, d, store_vectors=False)
    assert hnsw > sq8 > sq6
    assert choose_spec(n, d, hnsw).spec == "faiss:HNSW32"
    assert choose_spec(n, d, hnsw - 1).spec == "faiss:IVF4096,SQ8"
    got = choose_spec(n, d, sq6)
    assert got.spec == "faiss:IVF4096,SQ6" and got.resident_bytes == sq6 and got.approximate
    assert "bytes a vector" in got.reason
    with pytest.raises(SpecError, match=r"no index spec fits .* raise --memory-budget"):
        choose_spec(n, d, sq6 - 1)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    model = referred.create_model("tiny", seed=0)
    path = tmp_path_factory.mktemp("auto") / "emb.parquet"
    vectors = clustered(2_000, model.config.output_dim)
    flat = pa.array(vectors.reshape(-1))
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(len(vectors))],
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        }
    )
    pq.write_table(table, path)
    return model, path


def test_an_auto_build_chooses_records_and_tunes(embeddings, tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    model, path = embeddings
    small = build_catalog_index(model, tmp_path / "exact", embeddings=path, spec="auto")
    assert small.spec == "flat" and small.tuning is None and "exact search" in small.auto
    monkeypatch.setattr(auto, "EXACT_UP_TO", 100)  # 2,000 products: now a large catalog
    report = build_catalog_index(model, tmp_path / "hnsw", embeddings=path, spec="auto")
    assert report.spec == "faiss:HNSW32"
    assert report.tuning is not None and report.tuning.target == 0.95 and report.tuning.reached
    info = load_index(tmp_path / "hnsw").info
    assert info["auto"]["spec"] == "faiss:HNSW32" and info["tuning"]["knob"] == "ef_search"
    d = model.config.output_dim
    budget = estimate_faiss(f"IVF{nlist_for(2_000)},SQ8", 2_000, d, store_vectors=False)
    fitted = build_catalog_index(
        model, tmp_path / "ivf", embeddings=path, spec="auto", memory_budget=budget
    )
    assert fitted.spec == f"faiss:IVF{nlist_for(2_000)},SQ8"
    assert fitted.tuning is not None and fitted.tuning.knob == "nprobe"
    with pytest.raises(ValueError, match="memory budget goes with spec 'auto'"):
        build_catalog_index(model, tmp_path / "x", embeddings=path, memory_budget=budget)


def test_the_cli_says_what_it_chose_and_refuses_a_budget_without_auto(embeddings, tmp_path, capsys):
    model, path = embeddings
    model.save_pretrained(tmp_path / "m")
    base = ["index", "build", "--model", str(tmp_path / "m"), "--embeddings", str(path)]
    assert cli.main([*base, "--out", str(tmp_path / "a"), "--spec", "auto"]) == 0
    assert "spec auto → flat: 2000 products ≤ 50000" in capsys.readouterr().out
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--memory-budget", "1GB"]) == 2
    assert "--memory-budget goes with --spec auto" in capsys.readouterr().err
    bad = [*base, "--out", str(tmp_path / "c"), "--spec", "auto", "--memory-budget", "lots"]
    assert cli.main(bad) == 2 and "--memory-budget: a memory size" in capsys.readouterr().err
    assert cli.main(["index", "info", str(tmp_path / "a"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["auto"]["spec"] == "flat"


def test_fill_index_trains_fills_and_refuses_mismatched_rows():
    from referred.catalog import fill_index

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(600)]
    index = fill_index("faiss:IVF8,Flat", ids, vectors, seed=1)  # trained on a sample first
    assert index.is_trained and len(index) == 600
    found = index.search(vectors[[5, 321]], 1)
    assert [row[0] for row in found.ids] == ["p5", "p321"]
    with pytest.raises(ValueError, match="600 ids need as many vectors and metadata rows"):
        fill_index("flat", ids, vectors[:10])
    with pytest.raises(ValueError, match="nothing to index"):
        fill_index("flat", [], vectors[:0])
