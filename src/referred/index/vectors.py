"""Float32 vector storage and exact top-k search over it, streamed in blocks.

A :class:`VectorStore` is a read-only *base* (after loading, a memory-mapped ``.npy``) plus an
in-RAM *tail* for rows added since. Writes never touch the base, so changing an index loaded
from disk (copy-on-write at array level) cannot modify the saved files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from referred.index.errors import CorruptIndexError

#: Scores computed per block (n_queries × rows); 2**24 float32 = 64 MiB.
SCORE_BUDGET = 1 << 24
#: Masks keeping at least this fraction of rows are scored in full, then masked; sparser
#: masks gather their rows first.
DENSE_MASK_FRACTION = 0.25


class RowSource(Protocol):
    """Anything exact search can read vectors from."""

    def __len__(self) -> int: ...
    def take(self, rows: np.ndarray) -> np.ndarray: ...
    def block(self, start: int, stop: int) -> np.ndarray: ...


class VectorStore:
    """(n, dim) float32 rows: a read-only base array followed by a growable in-RAM tail."""

    def __init__(self, dim: int, base: np.ndarray | None = None) -> None:
        self.dim = dim
        self._base = base if base is not None else np.empty((0, dim), dtype=np.float32)
        self._tail = np.empty((0, dim), dtype=np.float32)  # (capacity, dim)
        self._n_tail = 0

    def __len__(self) -> int:
        return len(self._base) + self._n_tail

    @property
    def nbytes(self) -> int:
        return len(self) * self.dim * 4

    def append(self, vectors: np.ndarray) -> None:
        """Add (m, dim) float32 rows at the end."""
        need = self._n_tail + len(vectors)
        if need > len(self._tail):
            grown = np.empty((max(need, 2 * len(self._tail), 1024), self.dim), dtype=np.float32)
            grown[: self._n_tail] = self._tail[: self._n_tail]
            self._tail = grown
        self._tail[self._n_tail : need] = vectors
        self._n_tail = need

    def truncate(self, n: int) -> None:
        """Forget rows from ``n`` on (only tail rows can be forgotten)."""
        if n < len(self._base):
            raise ValueError(f"cannot truncate below the base ({len(self._base)} rows) to {n}")
        self._n_tail = n - len(self._base)

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a (stop - start, dim) array (a view where possible)."""
        nb = len(self._base)
        if stop <= nb:
            return self._base[start:stop]
        if start >= nb:
            return self._tail[start - nb : stop - nb]
        return np.concatenate([self._base[start:], self._tail[: stop - nb]])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (m,) int64 as a new (m, dim) float32 array."""
        rows = np.asarray(rows, dtype=np.int64)
        nb = len(self._base)
        if self._n_tail == 0:
            return self._base[rows]
        if nb == 0:
            return self._tail[rows]
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        in_base = rows < nb
        out[in_base] = self._base[rows[in_base]]
        out[~in_base] = self._tail[rows[~in_base] - nb]
        return out

    def compacted(self, keep: np.ndarray) -> VectorStore:
        """A new in-RAM store of the rows where the (n,) bool ``keep`` is True."""
        out = VectorStore(self.dim)
        for start, stop in _ranges(len(self), 1 << 16):
            out.append(self.block(start, stop)[keep[start:stop]])
        return out

    def save(self, path: Path, keep: np.ndarray | None = None) -> None:
        """Write the rows (those where ``keep`` is True, if given) to a ``.npy``, in blocks."""
        n = len(self) if keep is None else int(np.count_nonzero(keep))
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, self.dim))
        pos = 0
        for start, stop in _ranges(len(self), 1 << 16):
            blk = self.block(start, stop)
            if keep is not None:
                blk = blk[keep[start:stop]]
            out[pos : pos + len(blk)] = blk
            pos += len(blk)
        out.flush()
        del out

    @classmethod
    def load(cls, path: Path, dim: int, n: int, mmap: bool = True) -> VectorStore:
        """Open a ``.npy`` of (n, dim) float32, memory-mapped read-only when ``mmap``."""
        try:
            base = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(f"cannot read vectors from {path}: {exc}") from None
        if base.dtype != np.float32 or base.shape != (n, dim):
            raise CorruptIndexError(
                f"{path} holds {base.dtype} {base.shape}, expected float32 {(n, dim)}"
            )
        return cls(dim, base)


def _ranges(n: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, step):
        yield start, min(start + step, n)


def exact_search(
    source: RowSource, queries: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of (nq, dim) ``queries`` over the rows of ``source``.

    mask: optional (n,) bool; only rows where it is True can be returned.
    Returns scores (nq, k) float32 best first and rows (nq, k) int64; -inf / -1 pad the rows
    beyond the number of candidates. Results are ordered by score, then by row; which of several
    rows tied at the k-th score is kept is unspecified.
    """
    nq, n = len(queries), len(source)
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_r = np.full((nq, k), -1, dtype=np.int64)
    rows_per_block = max(1024, SCORE_BUDGET // max(nq, 1))
    if mask is not None and np.count_nonzero(mask) < DENSE_MASK_FRACTION * n:
        selected = np.flatnonzero(mask)
        for start, stop in _ranges(len(selected), rows_per_block):
            rows = selected[start:stop]
            scores = queries @ source.take(rows).T  # (nq, b)
            best_s, best_r = _merge(best_s, best_r, scores, rows, k)
    else:
        for start, stop in _ranges(n, rows_per_block):
            scores = queries @ source.block(start, stop).T  # (nq, b)
            if mask is not None:
                scores[:, ~mask[start:stop]] = -np.inf
            best_s, best_r = _merge(best_s, best_r, scores, np.arange(start, stop), k)
    return _sorted(best_s, best_r)


def _merge(
    best_s: np.ndarray, best_r: np.ndarray, scores: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fold a block's (nq, b) ``scores`` for ``rows`` (b,) into the running (nq, k) top-k."""
    b = scores.shape[1]
    if b > k:
        part = np.argpartition(scores, b - k, axis=1)[:, b - k :]  # (nq, k) unordered
        scores = np.take_along_axis(scores, part, axis=1)
        cand_r = rows[part]
    else:
        cand_r = np.broadcast_to(rows, scores.shape)
    if b >= k and np.isneginf(best_s).all():  # first full block: nothing to merge with
        return scores, cand_r
    all_s = np.concatenate([best_s, scores], axis=1)  # (nq, k + min(b, k))
    all_r = np.concatenate([best_r, cand_r], axis=1)
    width = all_s.shape[1]
    part = np.argpartition(all_s, width - k, axis=1)[:, width - k :]
    return np.take_along_axis(all_s, part, axis=1), np.take_along_axis(all_r, part, axis=1)


def _sorted(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending then row ascending; -inf entries become row -1."""
    rows = np.where(np.isneginf(scores), -1, rows)
    order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)
    scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
    return scores, np.take_along_axis(rows, order, axis=1)
