"""Distractor block sources: where the streamed ranking reads embeddings from.

A *block source* is any iterable of ``(embeddings, categories)`` pairs, ``(n_b, d)`` float32
and ``(n_b,)`` int, in metadata order; blocks may have any size (the ranking re-cuts them).
This module gives three: in-memory or memory-mapped arrays, ``.npy`` files read with plain
file reads (so the resident memory stays at one block), and :class:`Multiplicity`, the sparse
weight vectors that describe bootstrap subsets over the distractor stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BlockSource = Iterable[tuple[np.ndarray, np.ndarray]]

DEFAULT_BLOCK = 65_536


def _check_categories(categories: np.ndarray, n: int) -> np.ndarray:
    cats = np.asarray(categories)
    if cats.shape != (n,) or cats.dtype.kind not in "iu":
        raise ValueError(
            f"categories must be an integer array of shape ({n},), got {cats.dtype} {cats.shape}"
        )
    return cats


def array_blocks(
    embeddings: np.ndarray, categories: np.ndarray, block_size: int = DEFAULT_BLOCK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of an ``(n, d)`` array (a ``np.memmap`` works: only one block is read at once).

    Note that pages of a memory map that were read stay counted in the process's resident
    memory until the OS reclaims them; use :func:`npy_blocks` to keep the footprint flat.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {embeddings.shape}")
    cats = _check_categories(categories, embeddings.shape[0])
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    for start in range(0, embeddings.shape[0], block_size):
        stop = min(start + block_size, embeddings.shape[0])
        yield np.asarray(embeddings[start:stop], dtype=np.float32), cats[start:stop]


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data_offset)`` of a C-ordered ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported; save C order")
        return shape, dtype, f.tell()


def npy_blocks(
    path: str | Path,
    categories: np.ndarray,
    block_size: int = DEFAULT_BLOCK,
    *,
    limit: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream an ``(n, d)`` ``.npy`` file in blocks with ``readinto`` (no memory map).

    Args:
        path: ``.npy`` file of float16/float32/float64 rows.
        categories: ``(n,)`` integer category of each row.
        block_size: rows per block.
        limit: stop after this many rows (``None``: the whole file).
    """
    path = Path(path)
    shape, dtype, offset = npy_header(path)
    if len(shape) != 2 or dtype.kind != "f":
        raise ValueError(f"{path}: expected a 2-D float array, got {dtype} {shape}")
    n, d = shape
    cats = _check_categories(categories, n)
    n = n if limit is None else min(n, limit)
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, n, block_size):
            rows = min(block_size, n - start)
            buf = np.empty((rows, d), dtype=dtype)
            got = f.readinto(memoryview(buf).cast("B"))
            if got != buf.nbytes:
                raise OSError(f"{path}: file ended early at row {start} (truncated?)")
            yield buf.astype(np.float32, copy=False), cats[start : start + rows]


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


def prefetch(source: BlockSource, depth: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Read up to ``depth`` blocks ahead in a background thread.

    File reads and decoding release the GIL, so reading the next block overlaps with scoring
    the current one. Errors in the source are re-raised in the consumer; closing the returned
    generator (or dropping it) stops the thread.
    """
    if depth < 1:
        yield from source
        return
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))

    thread = threading.Thread(target=work, name="block-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class Multiplicity:
    """A sparse integer weight vector over the distractor stream.

    ``indices`` are sorted unique stream positions (0-based, metadata order) and ``counts`` how
    many times each was drawn; every other position has weight 0.
    """

    indices: np.ndarray  # (m,) int64, sorted, unique
    counts: np.ndarray  # (m,) int64, > 0

    @classmethod
    def from_samples(cls, positions: np.ndarray) -> Multiplicity:
        """From drawn positions with repeats (a bootstrap sample with replacement)."""
        pos = np.asarray(positions, dtype=np.int64).ravel()
        if pos.size and pos.min() < 0:
            raise ValueError(f"distractor positions must be >= 0, found {pos.min()}")
        idx, cnt = np.unique(pos, return_counts=True)
        return cls(idx, cnt.astype(np.int64))

    @classmethod
    def from_dense(cls, weights: np.ndarray) -> Multiplicity:
        """From a dense ``(n,)`` vector of non-negative integer multiplicities."""
        w = np.asarray(weights)
        if w.ndim != 1 or w.dtype.kind not in "iub" or (w.size and w.min() < 0):
            raise ValueError("a dense multiplicity vector must be 1-D non-negative integers")
        idx = np.flatnonzero(w)
        return cls(idx.astype(np.int64), w[idx].astype(np.int64))

    @classmethod
    def empty(cls) -> Multiplicity:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

    @property
    def total(self) -> int:
        """Number of draws (the nominal subset size)."""
        return int(self.counts.sum())

    @property
    def end(self) -> int:
        """One past the last position with a non-zero weight (0 when empty)."""
        return int(self.indices[-1]) + 1 if self.indices.size else 0

    def dense(self, start: int, stop: int) -> np.ndarray:
        """Weights of positions ``start..stop-1`` as a dense ``(stop-start,)`` int64 vector."""
        lo, hi = np.searchsorted(self.indices, [start, stop])
        out = np.zeros(stop - start, dtype=np.int64)
        out[self.indices[lo:hi] - start] = self.counts[lo:hi]
        return out
