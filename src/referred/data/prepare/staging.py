"""Stage the images fetched by img2dataset: one sequential scan, then random access by URL.

img2dataset writes either parquet shards (columns ``url`` and ``jpg``) or webdataset tars
(``{key}.jpg`` + ``{key}.json`` holding the ``url``, plus a sidecar parquet without images).
The scan reads every source once, in file order, keeps the images whose URL the metadata
wants (decoding them when ``verify`` is on, so corrupt ones are counted and left out), and
appends them to ``images.bin`` under the staging folder, with a sorted index (URL key →
offset, length). Writing the layout then reads each image with one seek, whatever order the
sources were in. Disk: one extra copy of the wanted images, removed by ``--clean``.

The staging is reused when the sources have not changed (same paths, sizes and mtimes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from referred.data.assemble import is_missing
from referred.data.files import (
    atomic_output,
    display_path,
    find_column,
    iter_parquet_batches,
    open_parquet,
    sorted_lookup,
    url_key,
)
from referred.data.records import DataFileError, ReadStats
from referred.data.tario import iter_tar_samples
from referred.data.training_layout import IMAGE_EXTS, as_bytes
from referred.imageio import ImageDecodeError, open_image

BIN_FILE, INDEX_FILE, SCAN_FILE = "images.bin", "index.npz", "scan.json"


def source_files(images_dir: Path, exclude: Path | None = None) -> list[Path]:
    """img2dataset outputs under ``images_dir``: ``*.parquet`` and ``*.tar``, sorted."""
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder not found: {images_dir}")
    found = []
    for path in sorted(images_dir.rglob("*")):
        if exclude is not None and exclude in path.parents:
            continue
        if path.is_file() and path.suffix in (".parquet", ".tar"):
            found.append(path)
    return found


def fingerprint(files: list[Path], wanted: np.ndarray, verify: bool) -> str:
    """Digest of the sources (paths, sizes, mtimes), the wanted URLs and the verify flag."""
    h = hashlib.sha256(f"verify={verify}".encode())
    for path in files:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(np.ascontiguousarray(wanted).tobytes())
    return h.hexdigest()


def iter_source_images(
    path: Path, shown: str, stats: ReadStats
) -> Iterator[tuple[str, bytes | None]]:
    """``(url, bytes or None)`` of one img2dataset shard; a sidecar parquet yields nothing."""
    if path.suffix == ".tar":
        for sample in iter_tar_samples(path, stats, shown):
            url = _sample_url(sample.files.get("json"))
            ext = next((e for e in IMAGE_EXTS if e in sample.files), None)
            if url is None:
                if ext is not None:
                    stats.warn("bad-metadata", shown, sample.key, "image without a json url")
                continue
            yield url, sample.files[ext] if ext else None
        return
    names = open_parquet(path).schema_arrow.names
    url_col, jpg_col = find_column(names, ["url"]), find_column(names, ["jpg", "image"])
    if url_col is None or jpg_col is None:
        return  # img2dataset's per-shard statistics, or another table without images
    for batch in iter_parquet_batches(path, columns=[url_col, jpg_col], batch_size=256):
        for url, cell in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            if not is_missing(url):
                yield str(url), as_bytes(cell)


def _sample_url(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    url = meta.get("url") if isinstance(meta, dict) else None
    return None if is_missing(url) else str(url)


@dataclass
class StagedImages:
    """Random access to the staged images by URL; knows which ones were corrupt."""

    bin_path: Path
    keys: np.ndarray  # (N,) uint64, sorted
    offsets: np.ndarray  # (N,) int64
    lengths: np.ndarray  # (N,) int64
    corrupt: np.ndarray  # (M,) uint64, sorted
    _handle: BinaryIO | None = field(default=None, init=False, repr=False)

    def status(self, url: str) -> str:
        """``"ok"``, ``"corrupt"`` or ``"missing"``."""
        key = np.array([url_key(url)], dtype=np.uint64)
        if sorted_lookup(self.keys, key)[0] >= 0:
            return "ok"
        return "corrupt" if sorted_lookup(self.corrupt, key)[0] >= 0 else "missing"

    def read(self, url: str) -> bytes:
        """The staged bytes of ``url`` (which must have status ``"ok"``)."""
        pos = sorted_lookup(self.keys, np.array([url_key(url)], dtype=np.uint64))[0]
        if pos < 0:
            raise KeyError(url)
        if self._handle is None:
            self._handle = self.bin_path.open("rb")
        self._handle.seek(int(self.offsets[pos]))
        return self._handle.read(int(self.lengths[pos]))

    def close(self) -> None:
        """Close the staged file (reopened on the next :meth:`read`)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @classmethod
    def load(cls, folder: Path) -> StagedImages:
        """Open a staging folder written by :func:`stage_images`."""
        with np.load(folder / INDEX_FILE) as index:
            return cls(
                folder / BIN_FILE,
                index["keys"],
                index["offsets"],
                index["lengths"],
                index["corrupt"],
            )


def _scan(
    files: list[Path],
    root: Path,
    wanted: np.ndarray,
    bin_path: Path,
    verify: bool,
    stats: ReadStats,
) -> tuple[list[int], list[int], list[int], list[int]]:
    keys, offsets, lengths, corrupt = [], [], [], []
    seen: set[int] = set()
    offset = 0
    with atomic_output(bin_path) as tmp, tmp.open("wb") as out:
        for path in files:
            shown = display_path(path, root)
            try:
                for url, data in iter_source_images(path, shown, stats):
                    key = url_key(url)
                    if key in seen or sorted_lookup(wanted, np.array([key], np.uint64))[0] < 0:
                        continue
                    if data is None:
                        continue  # a failed download: the URL stays missing
                    if verify and not _decodes(data, url, shown, stats):
                        corrupt.append(key)
                        seen.add(key)
                        continue
                    seen.add(key)
                    out.write(data)
                    keys.append(key)
                    offsets.append(offset)
                    lengths.append(len(data))
                    offset += len(data)
            except (DataFileError, pa.ArrowException, OSError) as exc:
                stats.error("unreadable-file", shown, None, f"{exc}; rest of the file skipped")
    return keys, offsets, lengths, corrupt


def _decodes(data: bytes, url: str, shown: str, stats: ReadStats) -> bool:
    try:
        open_image(data)
    except ImageDecodeError as exc:
        stats.error("corrupt-image", shown, url, str(exc))
        return False
    return True


def stage_images(
    images_dir: Path, staging: Path, wanted: np.ndarray, *, verify: bool, stats: ReadStats
) -> StagedImages:
    """Scan ``images_dir`` into ``staging`` (reused when already done for the same inputs).

    ``wanted`` are the sorted URL keys the metadata refers to (shape (N,), uint64).
    """
    files = source_files(images_dir, exclude=staging)
    digest = fingerprint(files, wanted, verify)
    scan_file = staging / SCAN_FILE
    if scan_file.is_file() and (staging / INDEX_FILE).is_file():
        previous = json.loads(scan_file.read_text())
        if previous.get("fingerprint") == digest:
            return StagedImages.load(staging)
    staging.mkdir(parents=True, exist_ok=True)
    keys, offsets, lengths, corrupt = _scan(
        files, images_dir, wanted, staging / BIN_FILE, verify, stats
    )
    order = np.argsort(np.array(keys, dtype=np.uint64), kind="stable")
    with atomic_output(staging / INDEX_FILE) as tmp, tmp.open("wb") as f:
        np.savez(
            f,
            keys=np.array(keys, np.uint64)[order],
            offsets=np.array(offsets, np.int64)[order],
            lengths=np.array(lengths, np.int64)[order],
            corrupt=np.sort(np.array(corrupt, np.uint64)),
        )
    with atomic_output(scan_file) as tmp:
        tmp.write_text(json.dumps({"fingerprint": digest, "sources": len(files)}))
    return StagedImages.load(staging)
