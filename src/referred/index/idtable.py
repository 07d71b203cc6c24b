"""Row ↔ id for millions of products in ~30 bytes an id (a dict of str takes ~160).

The rows loaded from disk (or left by a compaction) form a frozen *base*: the ids as one
pyarrow string array (their UTF-8 bytes in one buffer with offsets), and a lookup table of the
ids' hashes sorted, with the row of each. Rows appended later go to a plain dict (*tail*)
until it grows past :data:`MAX_TAIL` or the catalogue compacts. Looking an id up hashes it and
binary-searches the sorted hashes, then compares the few candidates' ids, so two ids with the
same hash are told apart. Deleting a row is the caller's business (``Catalog`` keeps the
alive mask); a deleted id appended again lives in the tail, which is asked first.

Hashes are Python's own ``hash`` of the str: salted per process, they are computed when the
table is built in this process and never saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

#: Tail entries past which (and past the base's size) :meth:`IdTable.append` folds the tail
#: into the base.
MAX_TAIL = 1 << 16
#: The hash of an id (a module attribute so that tests can force collisions).
_hash = hash


class IdTable:
    """Ids of rows ``0 .. n-1``; ``None`` marks a row whose id was dropped (deleted)."""

    def __init__(self, ids: Sequence[str | None] = ()) -> None:
        self._freeze(ids)

    # ------------------------------------------------------------------------------ building

    def _freeze(self, ids: Sequence[str | None]) -> None:
        """Make ``ids`` the base (rows 0 .. len-1) and empty the tail."""
        self._set_base(pa.array(list(ids), type=pa.large_string()))

    def _set_base(self, array: pa.Array) -> None:
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            raise TypeError(f"ids must be a string array, got {array.type}")
        n = len(array)
        self._valid = np.array(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        self._arrow = array
        self._n_base = n
        strings = array.to_pylist()  # transient: the hashes need the str objects once
        hashes = np.fromiter(
            (_hash(s) if s is not None else 0 for s in strings), dtype=np.int64, count=n
        )
        del strings
        rows = np.flatnonzero(self._valid).astype(np.int64 if n >= 2**31 else np.int32)
        order = np.argsort(hashes[rows], kind="stable")
        self._hash_sorted = hashes[rows][order]
        self._hash_rows = rows[order]
        self._tail: dict[str, int] = {}
        self._tail_ids: list[str | None] = []

    @classmethod
    def from_arrow(cls, array: pa.Array | pa.ChunkedArray) -> IdTable:
        """A table over a (large_)string array of ids, null for deleted rows."""
        table = cls.__new__(cls)
        table._set_base(array)
        return table

    # ------------------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return self._n_base + len(self._tail_ids)

    def _base_id(self, row: int) -> str | None:
        return self._arrow[row].as_py() if self._valid[row] else None

    def id_at(self, row: int) -> str | None:
        """The id of ``row`` (None when dropped)."""
        if row < self._n_base:
            return self._base_id(row)
        return self._tail_ids[row - self._n_base]

    def ids_at(self, rows: Sequence[int]) -> list[str | None]:
        """The ids of ``rows`` (None when dropped), base rows taken in one vectorised call."""
        rows = np.asarray(rows, dtype=np.int64)
        out: list[str | None] = [None] * len(rows)
        base = np.flatnonzero((rows < self._n_base) & (rows >= 0))
        if len(base):
            picked = rows[base]
            found = self._arrow.take(pa.array(picked)).to_pylist()
            for j, r, i in zip(base.tolist(), picked.tolist(), found):
                out[j] = i if self._valid[r] else None
        for j in np.flatnonzero(rows >= self._n_base).tolist():
            out[j] = self._tail_ids[int(rows[j]) - self._n_base]
        return out

    def row(self, id_: str, alive: np.ndarray) -> int:
        """The live row holding ``id_``, or -1 (``alive``: the caller's (n,) mask)."""
        r = self._tail.get(id_)
        if r is not None:
            return r if alive[r] else -1
        if not isinstance(id_, str):
            return -1
        h = _hash(id_)
        lo = int(np.searchsorted(self._hash_sorted, h, side="left"))
        while lo < len(self._hash_sorted) and self._hash_sorted[lo] == h:
            r = int(self._hash_rows[lo])
            if alive[r] and self._arrow[r].as_py() == id_:
                return r
            lo += 1
        return -1

    def to_list(self, n: int | None = None) -> list[str | None]:
        """Every row's id (None when dropped), rows ``0 .. n-1`` (default: all)."""
        base = self._arrow.to_pylist()
        out = [i if v else None for i, v in zip(base, self._valid)] + list(self._tail_ids)
        return out if n is None else out[:n]

    # ---------------------------------------------------------------------------- mutations

    def append(self, ids: Sequence[str], alive: np.ndarray) -> None:
        """Rows ``len(self) ..`` get ``ids``; a long tail is folded into the base (``alive``:
        the caller's mask, dead rows' ids are dropped then)."""
        start = len(self)
        self._tail_ids.extend(ids)
        self._tail.update(zip(ids, range(start, start + len(ids))))
        # fold when the tail outgrows the base too: folds stay O(1) amortised per append
        if len(self._tail) > max(MAX_TAIL, self._n_base):
            self.fold(alive)

    def fold(self, alive: np.ndarray) -> None:
        """Rebuild the base from every row (dead rows' ids dropped), emptying the tail."""
        n = len(self)
        ids = self.to_list()
        self._freeze([i if alive[r] else None for r, i in enumerate(ids[:n])])

    def truncate(self, n: int) -> None:
        """Forget rows ``n ..`` (an append undone)."""
        if n < self._n_base:  # a fold took some of those rows into the base: rebuild it
            self._freeze(self.to_list(n))
            return
        for i in self._tail_ids[n - self._n_base :]:
            if i is not None:
                self._tail.pop(i, None)
        del self._tail_ids[n - self._n_base :]

    def drop(self, rows: np.ndarray) -> None:
        """Forget the ids of ``rows`` (deleted): they no longer answer :meth:`row`."""
        for r in np.asarray(rows, dtype=np.int64).tolist():
            if r < self._n_base:
                self._valid[r] = False
            else:
                i = self._tail_ids[r - self._n_base]
                if i is not None and self._tail.get(i) == r:
                    del self._tail[i]
                self._tail_ids[r - self._n_base] = None

    def nbytes(self) -> int:
        """Bytes held (buffers, lookup table, tail estimate)."""
        base = (
            self._arrow.nbytes
            + self._valid.nbytes
            + self._hash_sorted.nbytes
            + self._hash_rows.nbytes
        )
        return base + 160 * len(self._tail)
