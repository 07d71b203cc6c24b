"""Streaming tar samples in, deterministic shards out."""

from __future__ import annotations

from pathlib import Path

import pytest

from referred.data import ReadStats
from referred.data.tario import TarShardWriter, iter_tar_samples, split_member_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [("123.0.jpg", ("123", "0.jpg")), ("dir/123.json", ("dir/123", "json")),
     ("a.b.c", ("a", "b.c")), ("noext", ("noext", ""))],
)  # fmt: skip
def test_split_member_name(name: str, expected: tuple[str, str]) -> None:
    assert split_member_name(name) == expected


def _write(path: Path) -> None:
    with TarShardWriter(path) as tar:
        tar.add("1.0.jpg", b"a" * 700)
        tar.add("1.json", b"{}")
        tar.add("2.0.jpg", b"b" * 700)
        tar.add("2.json", b"{}")


def test_writer_is_reproducible_and_atomic(tmp_path: Path) -> None:
    _write(tmp_path / "a.tar")
    _write(tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with pytest.raises(RuntimeError), TarShardWriter(tmp_path / "c.tar") as tar:
        tar.add("x.jpg", b"x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar"]


def test_samples_are_grouped_by_key(tmp_path: Path) -> None:
    _write(tmp_path / "a.tar")
    stats = ReadStats()
    samples = list(iter_tar_samples(tmp_path / "a.tar", stats))
    assert [(s.key, sorted(s.files)) for s in samples] == [
        ("1", ["0.jpg", "json"]),
        ("2", ["0.jpg", "json"]),
    ]
    assert stats.errors == 0


def test_truncated_tar_keeps_complete_samples(tmp_path: Path) -> None:
    _write(tmp_path / "a.tar")
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "a.tar").write_bytes(data[: 3072 + 300])  # inside sample 2's image data
    stats = ReadStats()
    samples = list(iter_tar_samples(tmp_path / "a.tar", stats, "a.tar"))
    assert [s.key for s in samples] == ["1"]
    assert [(p.kind, p.item) for p in stats.problems] == [("truncated-tar", "2")]


def test_tar_cut_inside_a_header_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "a.tar")
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "a.tar").write_bytes(data[: 2560 + 40])  # inside sample 2's first header
    stats = ReadStats()
    assert [s.key for s in iter_tar_samples(tmp_path / "a.tar", stats)] == ["1"]
    assert stats.problem_counts == {"truncated-tar": 1}
    assert "after sample '1'" in stats.problems[0].detail


def test_missing_and_garbage_files_are_reported(tmp_path: Path) -> None:
    stats = ReadStats()
    assert list(iter_tar_samples(tmp_path / "absent.tar", stats)) == []
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file" * 40)
    assert list(iter_tar_samples(tmp_path / "junk.tar", stats)) == []
    assert sorted(stats.problem_counts) == ["missing-file", "unreadable-file"]
