"""The one resumable embedding cache: a kill mid-job loses and duplicates nothing, a cache of
another model is refused, a corrupt part is redone, failures are listed and never fatal."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from referred.catalog.cache import (
    CacheMismatchError,
    EmbeddingCache,
    EmbedItem,
    EmbedReport,
    OutputCache,
    parts_dir,
    read_embeddings,
)

RECORD = {"model": "a1b2", "conditioning": "category"}
ROOT = Path(__file__).resolve().parents[2]


def vector(key: str) -> np.ndarray:
    """A unit vector that depends on the key only: (4,) float32."""
    v = np.random.default_rng(int(key.strip("k"))).normal(size=4)
    return (v / np.linalg.norm(v)).astype(np.float32)


def stream(n: int, bad: tuple[int, ...] = ()) -> list[EmbedItem]:
    return [EmbedItem(f"k{i}", "bad" if i in bad else "ok", i % 3) for i in range(n)]


class Encoder:
    """Embeds items by key; items whose image is "bad" fail. Remembers what it embedded."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, items):
        self.seen += [it.key for it in items]
        failed = {i: "not a readable image" for i, it in enumerate(items) if it.image == "bad"}
        ok = [vector(it.key) for i, it in enumerate(items) if i not in failed]
        return (np.stack(ok) if ok else np.zeros((0, 4), np.float32)), failed


def run_killed(code: str) -> None:
    """Run ``code`` in a fresh interpreter that SIGKILLs itself mid-job (no cleanup at all)."""
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    done = subprocess.run(argv, capture_output=True, cwd=ROOT)
    assert done.returncode == -9, done.stderr.decode()


KILL_STREAM = """
import os, signal, numpy as np
from referred.catalog.cache import EmbeddingCache, EmbedItem
from tests.catalog.test_cache import RECORD, stream, vector

def encode(items):
    if items[0].key == "k12":
        os.kill(os.getpid(), signal.SIGKILL)  # killed inside the fourth part
    return np.stack([vector(it.key) for it in items]), {}

EmbeddingCache({folder!r}, RECORD).ensure(stream(30), encode, part_size=4)
"""


def test_a_killed_stream_job_resumes_losing_and_repeating_nothing(tmp_path):
    run_killed(KILL_STREAM.replace("{folder!r}", repr(str(tmp_path / "c"))))
    assert len(list((tmp_path / "c").glob("part-*.parquet"))) == 3
    encode = Encoder()
    got = EmbeddingCache(tmp_path / "c", RECORD).ensure(stream(30), encode, part_size=4)
    assert encode.seen == [f"k{i}" for i in range(12, 30)]  # the 3 finished parts reused
    assert got.keys.tolist() == [f"k{i}" for i in range(30)] and got.exhausted
    np.testing.assert_array_equal(got.load(), np.stack([vector(f"k{i}") for i in range(30)]))
    np.testing.assert_array_equal(got.categories, np.arange(30) % 3)


KILL_KEYED = """
import os, signal
from referred.catalog.cache import EmbedReport, OutputCache
from tests.catalog.test_cache import RECORD, vector

cache = OutputCache({out!r}, RECORD, 4, rows_per_part=3)
report = EmbedReport({out!r})
for n, (key, _) in enumerate(cache.pending([(f"k{{i}}", None) for i in range(12)], report)):
    if n == 10:
        os.kill(os.getpid(), signal.SIGKILL)  # 3 parts written, one row buffered
    cache.add([key], vector(key)[None])
"""


def test_a_killed_keyed_job_resumes_losing_and_repeating_nothing(tmp_path):
    out = tmp_path / "e.parquet"
    run_killed(KILL_KEYED.format(out=str(out)))
    assert not out.exists() and len(list(parts_dir(out).glob("part-*.parquet"))) == 3
    items = [(f"k{i}", None) for i in range(14)]  # two more since
    cache, report = OutputCache(out, RECORD, 4), EmbedReport(out)
    todo = [key for key, _ in cache.pending(items, report)]
    assert todo == [f"k{i}" for i in range(9, 14)] and report.already_done == 9
    for key in todo:
        cache.add([key], vector(key)[None])
    cache.finish()
    ids, vectors = read_embeddings(out)
    assert sorted(ids, key=lambda k: int(k[1:])) == [key for key, _ in items] == ids
    np.testing.assert_array_equal(vectors, np.stack([vector(k) for k in ids]))
    assert not parts_dir(out).exists()
    again = EmbedReport(out)
    assert list(OutputCache(out, RECORD, 4).pending(items, again)) == []
    assert again.already_done == 14


def test_a_crash_between_merge_and_cleanup_leaves_no_duplicate(tmp_path):
    out = tmp_path / "e.parquet"
    cache = OutputCache(out, RECORD, 4, rows_per_part=2)
    for key in ("k0", "k1", "k2"):
        cache.add([key], vector(key)[None])
    cache.finish()
    leftover = EmbeddingCache(parts_dir(out), RECORD)  # as if the parts had not been removed
    leftover.write(0, ["k1", "k2"], np.stack([vector("k1"), vector("k2")]))
    resumed = OutputCache(out, RECORD, 4)
    resumed.add(["k3"], vector("k3")[None])
    resumed.finish()
    assert read_embeddings(out)[0] == ["k0", "k1", "k2", "k3"]


def test_a_cache_of_another_model_or_condition_is_refused(tmp_path):
    EmbeddingCache(tmp_path / "c", RECORD).ensure(stream(5), Encoder(), part_size=2)
    other = {**RECORD, "model": "ffff"}
    with pytest.raises(CacheMismatchError, match="differs in: model 'a1b2' there, 'ffff' now"):
        EmbeddingCache(tmp_path / "c", other).ensure(stream(5), Encoder(), part_size=2)
    text = {**RECORD, "conditioning": "text"}
    with pytest.raises(CacheMismatchError, match="conditioning 'category' there, 'text' now"):
        EmbeddingCache(tmp_path / "c", text).parts()

    out = tmp_path / "e.parquet"
    cache = OutputCache(out, RECORD, 4)
    cache.add(["k1"], vector("k1")[None])
    cache.flush()  # a killed job: parts only
    with pytest.raises(CacheMismatchError, match=r"e\.parquet\.parts/part-00000\.parquet holds"):
        OutputCache(out, other, 4)
    cache.finish()  # a finished job: the output carries the record
    with pytest.raises(CacheMismatchError, match=r"e\.parquet holds embeddings of another model"):
        OutputCache(out, other, 4)
    assert read_embeddings(out)[0] == ["k1"]  # left as it was

    pq.write_table(pa.table({"id": ["x"]}), tmp_path / "plain.parquet")
    with pytest.raises(CacheMismatchError, match="no record of the model that made it"):
        OutputCache(tmp_path / "plain.parquet", RECORD, 4)
    old = tmp_path / "old"
    old.mkdir()
    (old / "meta.json").write_text("{}")  # the earlier .npy shard format
    with pytest.raises(CacheMismatchError, match=r"old \.npy shard format; delete it"):
        EmbeddingCache(old, RECORD)


def test_a_corrupt_or_partial_part_is_ignored_and_redone(tmp_path, caplog):
    folder = tmp_path / "c"
    first = EmbeddingCache(folder, RECORD).ensure(stream(10), Encoder(), part_size=4)
    part = folder / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:100])  # truncated
    (folder / ".part-00002.parquet.tmp").write_bytes(b"half a part")  # a killed writer's
    encode = Encoder()
    with caplog.at_level(logging.WARNING, logger="referred.catalog.cache"):
        again = EmbeddingCache(folder, RECORD).ensure(stream(10), encode, part_size=4)
    assert "part-00001.parquet, which cannot be read" in caplog.text
    assert encode.seen == ["k4", "k5", "k6", "k7"]  # only that part's items
    assert again.keys.tolist() == first.keys.tolist()
    np.testing.assert_array_equal(again.load(), first.load())
    assert not list(folder.glob(".*.tmp"))

    out = tmp_path / "e.parquet"
    cache = OutputCache(out, RECORD, 4, rows_per_part=1)
    for key in ("k0", "k1"):
        cache.add([key], vector(key)[None])
    (parts_dir(out) / "part-00000.parquet").write_bytes(b"PAR1 garbage")
    report = EmbedReport(out)
    resumed = OutputCache(out, RECORD, 4)
    assert [k for k, _ in resumed.pending([("k0", None), ("k1", None)], report)] == ["k0"]


def test_failures_are_listed_never_fatal_and_not_retried(tmp_path):
    encode = Encoder()
    got = EmbeddingCache(tmp_path, RECORD).ensure(stream(10, bad=(1, 6)), encode, 5, part_size=4)
    assert got.keys.tolist() == ["k0", "k2", "k3", "k4", "k5"]  # 5 rows: bad items skipped
    assert got.failures == [("k1", "not a readable image")]
    assert not got.exhausted
    encode = Encoder()
    more = EmbeddingCache(tmp_path, RECORD).ensure(stream(10, bad=(1, 6)), encode, part_size=4)
    assert encode.seen == ["k4", "k5", "k6", "k7", "k8", "k9"]  # the cut part was redone
    assert more.failures == [("k1", "not a readable image"), ("k6", "not a readable image")]
    assert len(more) == 8 and more.exhausted


def test_a_larger_limit_extends_the_cache_and_blocks_stop_at_the_limit(tmp_path):
    encode = Encoder()
    small = EmbeddingCache(tmp_path, RECORD).ensure(stream(20), encode, 6, part_size=4)
    assert len(small) == 6 and encode.seen == [f"k{i}" for i in range(6)]
    encode = Encoder()
    big = EmbeddingCache(tmp_path, RECORD).ensure(stream(20), encode, 11, part_size=4)
    assert encode.seen == [f"k{i}" for i in range(4, 11)]  # part 0 reused, the cut one redone
    blocks = list(big.blocks(7))
    assert [len(v) for v, _ in blocks] == [4, 3]
    np.testing.assert_array_equal(np.concatenate([v for v, _ in blocks]), big.load()[:7])
    encode = Encoder()
    EmbeddingCache(tmp_path, RECORD).ensure(iter(stream(20)), encode, 11, part_size=4)
    assert encode.seen == []  # all done: the stream is not even read
    with pytest.raises(ValueError, match="the item stream ended at 3 items"):
        EmbeddingCache(tmp_path, RECORD).ensure(stream(3), Encoder(), 20, part_size=4)
