"""Webdataset tars with the standard library: streamed samples in, deterministic shards out.

A webdataset sample is a run of consecutive members sharing a *key*: the member's base name up
to its first dot (``123.0.jpg`` and ``123.json`` belong to sample ``123``, with extensions
``0.jpg`` and ``json``). Reading streams the tar (``mode="r|*"``), so a shard is never held in
memory beyond one sample, and a truncated shard yields every complete sample before the damage.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from referred.data.files import atomic_output
from referred.data.records import ReadStats


@dataclass(frozen=True)
class TarSample:
    """One webdataset sample: its key and its members' bytes by extension (``"0.jpg"``)."""

    key: str
    files: dict[str, bytes]


def split_member_name(name: str) -> tuple[str, str]:
    """``"dir/123.0.jpg"`` → ``("dir/123", "0.jpg")``; a name without a dot has no extension."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext if dot else ""


def iter_tar_samples(path: Path, stats: ReadStats, shown: str | None = None) -> Iterator[TarSample]:
    """Stream the samples of one tar, in file order.

    A missing or unreadable file, or one cut short, is recorded in ``stats`` as an error
    (``missing-file``, ``unreadable-file``, ``truncated-tar``) naming the sample that was lost;
    the samples before the damage are still yielded. ``shown`` is the file name for reports.
    """
    shown = shown or str(path)
    if not path.is_file():
        stats.error("missing-file", shown, None, "file does not exist")
        return
    key: str | None = None
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                mkey, ext = split_member_name(member.name)
                if mkey != key and key is not None:
                    yield TarSample(key, files)
                    files = {}
                key = mkey
                handle = tar.extractfile(member)
                files[ext] = handle.read() if handle is not None else b""
            end = tar.offset
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        lost = f"; sample {key!r} lost" if key is not None else ""
        kind = "truncated-tar" if key is not None else "unreadable-file"
        stats.error(kind, shown, key, f"tar damaged after the last complete sample ({exc}){lost}")
        return
    if key is not None:
        yield TarSample(key, files)
    # tarfile stops silently at a header cut short; a plain tar must end with two zero blocks
    if path.suffix == ".tar" and path.stat().st_size < end + 2 * tarfile.BLOCKSIZE:
        stats.error(
            "truncated-tar",
            shown,
            None,
            f"file cut short (no end-of-archive marker) after sample {key!r}",
        )


class TarShardWriter:
    """Write a tar shard atomically and byte-reproducibly (fixed mtime, owner and mode).

    Use as a context manager; the shard appears under its final name only when the block
    exits without an exception.
    """

    def __init__(self, path: Path, keep_identical: bool = False) -> None:
        self.path = path
        self._ctx = atomic_output(path, keep_identical)
        self._tar: tarfile.TarFile | None = None
        self.count = 0

    def __enter__(self) -> TarShardWriter:
        tmp = self._ctx.__enter__()
        self._tar = tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT)
        return self

    def add(self, name: str, data: bytes) -> None:
        """Append one member called ``name`` holding ``data``."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        assert self._tar is not None, "use TarShardWriter as a context manager"
        self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tar is not None
        self._tar.close()
        self._ctx.__exit__(exc_type, exc, tb)
