"""Saving and loading: round trips, memory-mapping, atomic saves under crashes, corrupt dirs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from referred.index import (
    CorruptIndexError,
    IndexNotFoundError,
    SpecError,
    TargetExistsError,
    create_index,
    load_index,
)
from tests.index.specs import MILVUS, make_index

SPECS = ["flat", "faiss:HNSW16", "faiss:IVF16,SQ8", MILVUS]
REPO = Path(__file__).resolve().parents[2]


def _build(spec, vectors, products, n=2000):
    ids, meta = products
    index = create_index(spec, vectors.shape[1])
    index.add(ids[:n], vectors[:n], meta[:n])
    return index


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_with_deletes_and_upserts(request, tmp_path, spec, vectors, products, queries):
    ids, meta = products
    index = make_index(request, spec, vectors.shape[1])
    index.add(ids[:2000], vectors[:2000], meta[:2000])
    index.delete(ids[:50])
    index.upsert([ids[60]], queries[:1], [{"category": "Feet"}])
    before = index.search(queries, 10, filter={"category": ["Feet", "Bags"]})
    index.save(tmp_path / "ix")

    loaded = load_index(tmp_path / "ix", verify=True)
    assert type(loaded) is type(index) and loaded.spec == index.spec
    assert len(loaded) == len(index)
    assert loaded.fields == index.fields
    after = loaded.search(queries, 10, filter={"category": ["Feet", "Bags"]})
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
    assert ids[10] not in loaded and loaded.get([ids[60]]).metadata[0]["category"] == "Feet"

    # mutate the loaded index, save again over the same directory, reload
    loaded.delete([ids[60]])
    loaded.upsert([ids[10]], vectors[10:11], [{"category": "Head"}])
    loaded.save(tmp_path / "ix")
    again = load_index(tmp_path / "ix")
    assert ids[60] not in again and again.get([ids[10]]).metadata[0] == {
        "id": ids[10],
        "category": "Head",
    }
    assert len(again) == len(index)


def test_flat_loads_memory_mapped_and_writes_never_touch_the_file(
    tmp_path, vectors, products, queries
):
    ids = products[0]
    _build("flat", vectors, products).save(tmp_path / "ix")
    saved = _digests(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert isinstance(loaded._store._base, np.memmap)
    loaded.upsert([ids[0]], -vectors[:1])  # replaces a row that lives in the mapped file
    loaded.add(["extra"], vectors[2001:2002], [{"category": "Feet"}])
    loaded.delete([ids[1]])
    assert loaded.get([ids[0]]).vectors.tolist() == (-vectors[:1]).tolist()
    assert loaded.search(-vectors[:1], 1).ids[0, 0] == ids[0]
    assert _digests(tmp_path / "ix") == saved  # copy-on-write: the saved index is intact
    assert len(load_index(tmp_path / "ix", verify=True)) == 2000


def test_load_options_override_search_settings_only(tmp_path, vectors, products):
    pytest.importorskip("faiss")
    index = create_index("faiss:HNSW16", vectors.shape[1], ef_search=40)
    index.add(products[0][:500], vectors[:500])
    index.save(tmp_path / "ix")
    assert load_index(tmp_path / "ix").ef_search == 40
    assert load_index(tmp_path / "ix", ef_search=200).ef_search == 200
    with pytest.raises(SpecError, match="ef_construction"):
        load_index(tmp_path / "ix", ef_construction=80)
    with pytest.raises(SpecError, match="cannot change"):
        load_index(_save_flat(tmp_path, vectors, products), ef_search=10)


def _save_flat(tmp_path, vectors, products, name="flat") -> Path:
    _build("flat", vectors, products, n=300).save(tmp_path / name)
    return tmp_path / name


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


def test_exception_mid_save_leaves_previous_index(tmp_path, vectors, products, monkeypatch):
    from referred.index.vectors import VectorStore

    target = _save_flat(tmp_path, vectors, products)
    saved = _digests(target)
    index = _build("flat", vectors, products, n=1000)
    real_save = VectorStore.save

    def failing_save(self, path, keep=None):
        real_save(self, path, keep)  # the vectors are written, then the disk "fails"
        raise OSError("disk full")

    monkeypatch.setattr(VectorStore, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        index.save(target)
    assert _digests(target) == saved and _leftovers(tmp_path) == []
    assert len(load_index(target, verify=True)) == 300


CRASH = """
import os, sys, types
import numpy as np

# Only referred.index is needed: skip the package root, which imports the torch model.
root = types.ModuleType("referred")
root.__path__ = [os.path.join(sys.argv[3], "src", "referred")]
sys.modules["referred"] = root
from referred.index import create_index, storage

target, where = sys.argv[1], sys.argv[2]
x = np.eye(8, dtype=np.float32)
index = create_index("flat", 8)
index.add([f"new{i}" for i in range(8)], x)
calls = {"n": 0}

def crash_on(name):
    real = getattr(storage, name)
    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os._exit(3)  # a kill: no exception handler or cleanup runs
        return real(*args, **kwargs)
    setattr(storage, name, wrapped)

crash_on(where)
index.save(target)
"""


@pytest.mark.parametrize("where", ["_digest", "_rename"])
def test_process_killed_mid_save_leaves_previous_index(tmp_path, vectors, products, where):
    """_digest: killed after the new files were written; _rename: between the two renames."""
    target = _save_flat(tmp_path, vectors, products)
    saved = _digests(target)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), str(target), where, str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    if where == "_rename":
        assert not target.exists()  # the previous index sits under its .old name
    loaded = load_index(target, verify=True)  # found and intact either way
    assert len(loaded) == 300 and "new0" not in loaded

    # the next save recovers / cleans up and replaces the index
    index = _build("flat", vectors, products, n=400)
    index.save(target)
    assert _leftovers(tmp_path) == []
    assert len(load_index(target)) == 400
    assert saved.keys() == _digests(target).keys()


def test_corrupt_directories_are_refused(tmp_path, vectors, products):
    target = _save_flat(tmp_path, vectors, products)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["format"] == "referred-index" and manifest["count"] == 300

    vec = target / "vectors.npy"
    data = vec.read_bytes()
    vec.write_bytes(data[:-100])
    with pytest.raises(CorruptIndexError, match="truncated"):
        load_index(target)
    vec.write_bytes(data[:-4] + b"\x00\x00\x80\x7f")  # same size, different bytes
    load_index(target)  # sizes match: accepted without verify
    with pytest.raises(CorruptIndexError, match="sha256"):
        load_index(target, verify=True)
    vec.write_bytes(data)

    (target / "rows.parquet").unlink()
    with pytest.raises(CorruptIndexError, match=r"missing rows\.parquet"):
        load_index(target)

    (target / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptIndexError, match="cannot parse"):
        load_index(target)
    (target / "manifest.json").unlink()
    with pytest.raises(CorruptIndexError, match=r"no manifest\.json"):
        load_index(target)
    with pytest.raises(IndexNotFoundError):
        load_index(tmp_path / "nothing-here")


def test_inconsistent_manifest_is_refused(tmp_path, vectors, products):
    target = _save_flat(tmp_path, vectors, products)
    mf = target / "manifest.json"
    manifest = json.loads(mf.read_text())
    mf.write_text(json.dumps({**manifest, "count": 299}))
    with pytest.raises(CorruptIndexError, match="299"):
        load_index(target)
    mf.write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(CorruptIndexError, match="upgrade"):
        load_index(target)


def test_save_refuses_to_replace_other_directories(tmp_path, vectors, products):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    index = _build("flat", vectors, products, n=10)
    with pytest.raises(TargetExistsError, match="not a saved index"):
        index.save(other)
    assert (other / "cat.jpg").read_bytes() == b"meow"
    (tmp_path / "empty").mkdir()
    index.save(tmp_path / "empty")  # an empty directory is fine
    assert len(load_index(tmp_path / "empty")) == 10


def test_an_index_filled_in_several_adds_without_metadata_saves_every_row(tmp_path):
    """Batches of products without metadata: their (column-less) tables keep their rows."""
    from referred.index import create_index, load_index

    rng = np.random.default_rng(0)
    index = create_index("flat", 8)
    for b in range(3):
        index.add([f"p{b}-{i}" for i in range(4)], rng.standard_normal((4, 8)).astype(np.float32))
    index.save(tmp_path / "ix")
    back = load_index(tmp_path / "ix")
    assert len(back) == 12 and back.get(["p2-3"]).ids == ["p2-3"]
