"""The row table: external str ids ↔ internal int64 rows, tombstones and metadata.

Rows are append-only positions shared with the vector storage (a faiss index, a float32 array).
Deleting marks a row dead (a tombstone); ``compact`` drops dead rows and renumbers the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from referred.index.base import PAD_ID, Filter
from referred.index.errors import DuplicateIdError, UnknownIdError
from referred.index.metadata import MetadataTable

_MASK_CACHE_SIZE = 32


def _grown(arr: np.ndarray, needed: int) -> np.ndarray:
    """``arr`` with capacity >= ``needed`` (doubling), keeping its contents."""
    if needed <= len(arr):
        return arr
    out = np.empty(max(needed, 2 * len(arr), 1024), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class Catalog:
    """Ids, liveness and metadata of every row of an index."""

    def __init__(self) -> None:
        self._ids = np.empty(0, dtype=object)  # (capacity,) row -> id, None once deleted
        self._alive = np.empty(0, dtype=bool)  # (capacity,)
        self._n = 0
        self._row: dict[str, int] = {}  # live id -> row
        self.meta = MetadataTable()
        self._masks: dict[tuple, np.ndarray] = {}
        # Searches run from several threads (the service); only the mask cache is shared
        # state they write, so only it is guarded. Writers need the caller's lock anyway.
        self._masks_lock = threading.Lock()

    # ------------------------------------------------------------------------------ queries

    @property
    def n_rows(self) -> int:
        """Rows, dead ones included."""
        return self._n

    @property
    def n_alive(self) -> int:
        return len(self._row)

    @property
    def n_dead(self) -> int:
        return self._n - len(self._row)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._row

    @property
    def alive(self) -> np.ndarray:
        """(n_rows,) bool, False for deleted rows (a read-only view)."""
        view = self._alive[: self._n]
        view.flags.writeable = False
        return view

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """(m,) int64 rows of live ``ids``; raises UnknownIdError naming the missing ones."""
        rows = [self._row.get(i, -1) for i in ids]
        if -1 in rows:
            missing = [i for i, r in zip(ids, rows) if r == -1]
            raise UnknownIdError(missing)
        return np.asarray(rows, dtype=np.int64)

    def existing_rows(self, ids: Sequence[str]) -> np.ndarray:
        """(m,) int64 rows of those ``ids`` that are present (absent ones are skipped)."""
        return np.asarray([self._row[i] for i in ids if i in self._row], dtype=np.int64)

    def check_absent(self, ids: Sequence[str]) -> None:
        """Raise DuplicateIdError if any of ``ids`` is already present."""
        present = [i for i in ids if i in self._row]
        if present:
            shown = ", ".join(map(repr, present[:5]))
            raise DuplicateIdError(
                f"{len(present)} id(s) already in the index: {shown}; use upsert() to replace them"
            )

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Ids of ``rows`` (any shape, -1 = none) as an object array of str, '' for -1."""
        out = np.full(rows.shape, PAD_ID, dtype=object)
        valid = rows >= 0
        out[valid] = self._ids[rows[valid]]
        return out

    def candidates(self, filter: Filter | None) -> np.ndarray | None:
        """(n_rows,) bool of live rows matching ``filter``; None when every row qualifies."""
        if not filter and self.n_dead == 0:
            return None
        key = self.meta.normalise_filter(filter) if filter else ()
        mask = self._masks.get(key)  # the same object until the catalogue changes
        if mask is None:
            mask = self.meta.mask(filter) & self.alive if filter else self.alive.copy()
            mask.flags.writeable = False
            with self._masks_lock:
                if key in self._masks:  # another thread got there first: share its object
                    return self._masks[key]
                if len(self._masks) >= _MASK_CACHE_SIZE:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[key] = mask
        return mask

    def records(self, rows: np.ndarray) -> list[dict]:
        """``id`` plus non-null metadata for each of ``rows`` (m,)."""
        recs = self.meta.take(rows)
        return [{"id": self._ids[r], **rec} for r, rec in zip(rows.tolist(), recs)]

    # -------------------------------------------------------------------------- mutations

    def append(self, ids: Sequence[str], meta: pa.Table) -> np.ndarray:
        """Give new (checked, absent) ``ids`` the next rows; returns them as (m,) int64."""
        m, start = len(ids), self._n
        self._ids = _grown(self._ids, start + m)
        self._alive = _grown(self._alive, start + m)
        self._ids[start : start + m] = ids
        self._alive[start : start + m] = True
        self._row.update(zip(ids, range(start, start + m)))
        self.meta.append(meta)
        self._n = start + m
        self._masks.clear()
        return np.arange(start, start + m, dtype=np.int64)

    def mark(self) -> tuple:
        """A snapshot that :meth:`rollback` returns to, taken before an append."""
        return self._n, self.meta.state()

    def rollback(self, mark: tuple) -> None:
        """Forget rows appended since ``mark`` (undoes an append whose storage step failed)."""
        n_rows, meta_state = mark
        for i in self._ids[n_rows : self._n]:
            self._row.pop(i, None)
        self._ids[n_rows : self._n] = None
        self._n = n_rows
        self.meta.restore(meta_state)
        self._masks.clear()

    def kill(self, rows: np.ndarray) -> None:
        """Mark live ``rows`` deleted."""
        for i in self._ids[rows]:
            del self._row[i]
        self._ids[rows] = None
        self._alive[rows] = False
        self._masks.clear()

    def compact(self) -> np.ndarray:
        """Drop dead rows and renumber; returns the (old n_rows,) bool mask of rows kept."""
        keep = self._alive[: self._n].copy()
        self._ids = self._ids[: self._n][keep].copy()
        self._n = len(self._ids)
        self._alive = np.ones(self._n, dtype=bool)
        self._row = {i: r for r, i in enumerate(self._ids.tolist())}
        self.meta.compact(keep)
        self._masks.clear()
        return keep

    # ------------------------------------------------------------------------- persistence

    def to_arrow(self) -> pa.Table:
        """One row per index row: ``id`` (null where deleted) then the metadata fields."""
        meta = self.meta.table()
        ids = pa.array(self._ids[: self._n].tolist(), type=pa.string())
        return meta.add_column(0, "id", ids)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Catalog:
        """Inverse of :meth:`to_arrow`."""
        cat = cls()
        ids = table.column("id").to_pylist()
        cat._n = len(ids)
        cat._ids = np.asarray([*ids, None], dtype=object)[:-1]  # keeps str objects, 1-D
        cat._alive = np.asarray([i is not None for i in ids], dtype=bool)
        cat._row = {i: r for r, i in enumerate(ids) if i is not None}
        cat.meta = MetadataTable(table.drop_columns(["id"]))
        return cat
