"""Spec strings, options, the protocol, and memory estimates against saved sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from referred.index import SpecError, VectorIndex, create_index, estimate_memory
from referred.index.factory import parse_spec


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("flat", ("flat", "")),
        (" FLAT ", ("flat", "")),
        ("faiss:HNSW32", ("faiss", "HNSW32")),
        ("faiss:IVF4096,PQ64", ("faiss", "IVF4096,PQ64")),
        ("milvus:./catalog.db", ("milvus", "./catalog.db")),
        ("milvus:http://host:19530", ("milvus", "http://host:19530")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", "hnsw", "flat:x", "faiss:", "faiss", "milvus:", "annoy:x", 3])
def test_unknown_specs_list_the_accepted_forms(spec):
    with pytest.raises(SpecError, match=r"accepted: 'flat', 'faiss:<index_factory string>'"):
        create_index(spec, 8)


def test_unknown_options_and_bad_dim():
    with pytest.raises(SpecError, match=r"unknown option\(s\) \['ef_search'\] for 'flat'"):
        create_index("flat", 8, ef_search=10)
    with pytest.raises(SpecError, match="dim must be a positive int"):
        create_index("flat", 0)


def test_backends_satisfy_the_protocol():
    pytest.importorskip("faiss")
    for spec in ("flat", "faiss:HNSW8"):
        assert isinstance(create_index(spec, 8), VectorIndex)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


@pytest.mark.parametrize("spec", ["flat", "faiss:HNSW16", "faiss:IVF16,SQ8", "faiss:HNSW16,SQ8"])
def test_estimate_is_close_to_saved_size(tmp_path, spec, vectors, products):
    if spec.startswith("faiss"):
        pytest.importorskip("faiss")
    n, dim = len(vectors), vectors.shape[1]
    index = create_index(spec, dim)
    index.add(products[0], vectors)  # no metadata: estimates exclude it
    index.save(tmp_path / "ix")
    saved, est = _dir_bytes(tmp_path / "ix"), estimate_memory(spec, n, dim)
    # the estimate counts RAM for the id catalogue (~48 B/id) that parquet stores in ~10
    assert 0.8 < est / saved < 2.5, (spec, est, saved)


def test_estimates_scale_as_documented():
    n, d = 1_000_000, 512
    assert estimate_memory("flat", n, d) == n * (4 * d + 48)
    flat, hnsw = estimate_memory("flat", n, d), estimate_memory("faiss:HNSW32", n, d)
    assert 1.1 < hnsw / flat < 1.2  # + ~276 B of links per vector
    pq = estimate_memory("faiss:IVF4096,PQ64", n, d, store_vectors=False)
    assert pq < 0.15 * flat
    assert estimate_memory("faiss:IVF4096,PQ64", n, d) > pq + n * 4 * d - 1
    with pytest.raises(SpecError, match="cannot estimate"):
        estimate_memory("faiss:LSH", n, d)
    assert estimate_memory("milvus:./x.db", n, d) > n * 4 * d
