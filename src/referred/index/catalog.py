"""The row table: external str ids ↔ internal int64 rows, tombstones and metadata.

Rows are append-only positions shared with the vector storage (a faiss index, a float32 array).
Deleting marks a row dead (a tombstone); ``compact`` drops dead rows and renumbers the rest.
Ids live in a compact :class:`~referred.index.idtable.IdTable` (~30 bytes an id, not the ~160
of a dict of str), which matters at millions of products.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from referred.index.base import PAD_ID, Filter
from referred.index.errors import DuplicateIdError, UnknownIdError
from referred.index.idtable import IdTable
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
        self._ids = IdTable()  # row <-> id (a deleted row's id is dropped)
        self._alive = np.empty(0, dtype=bool)  # (capacity,)
        self._n = 0
        self._n_alive = 0
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
        return self._n_alive

    @property
    def n_dead(self) -> int:
        return self._n - self._n_alive

    def _row_of(self, id_: object) -> int:
        """The live row of ``id_``, or -1."""
        return self._ids.row(id_, self._alive) if isinstance(id_, str) else -1

    def __contains__(self, id_: object) -> bool:
        return self._row_of(id_) >= 0

    @property
    def alive(self) -> np.ndarray:
        """(n_rows,) bool, False for deleted rows (a read-only view)."""
        view = self._alive[: self._n]
        view.flags.writeable = False
        return view

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """(m,) int64 rows of live ``ids``; raises UnknownIdError naming the missing ones."""
        rows = [self._row_of(i) for i in ids]
        if -1 in rows:
            missing = [i for i, r in zip(ids, rows) if r == -1]
            raise UnknownIdError(missing)
        return np.asarray(rows, dtype=np.int64)

    def existing_rows(self, ids: Sequence[str]) -> np.ndarray:
        """(m,) int64 rows of those ``ids`` that are present (absent ones are skipped)."""
        rows = (self._row_of(i) for i in ids)
        return np.asarray([r for r in rows if r >= 0], dtype=np.int64)

    def check_absent(self, ids: Sequence[str]) -> None:
        """Raise DuplicateIdError if any of ``ids`` is already present."""
        present = [i for i in ids if self._row_of(i) >= 0]
        if present:
            shown = ", ".join(map(repr, present[:5]))
            raise DuplicateIdError(
                f"{len(present)} id(s) already in the index: {shown}; use upsert() to replace them"
            )

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Ids of ``rows`` (any shape, -1 = none) as an object array of str, '' for -1."""
        out = np.full(rows.shape, PAD_ID, dtype=object)
        valid = rows >= 0
        found = self._ids.ids_at(rows[valid].tolist())
        if found:
            out[valid] = np.asarray([*found, None], dtype=object)[:-1]
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
        return [{"id": self._ids.id_at(r), **rec} for r, rec in zip(rows.tolist(), recs)]

    # -------------------------------------------------------------------------- mutations

    def append(self, ids: Sequence[str], meta: pa.Table) -> np.ndarray:
        """Give new (checked, absent) ``ids`` the next rows; returns them as (m,) int64."""
        m, start = len(ids), self._n
        self._alive = _grown(self._alive, start + m)
        self._alive[start : start + m] = True
        self._ids.append(list(ids), self._alive)
        self.meta.append(meta)
        self._n = start + m
        self._n_alive += m
        self._masks.clear()
        return np.arange(start, start + m, dtype=np.int64)

    def mark(self) -> tuple:
        """A snapshot that :meth:`rollback` returns to, taken before an append."""
        return self._n, self.meta.state()

    def rollback(self, mark: tuple) -> None:
        """Forget rows appended since ``mark`` (undoes an append whose storage step failed)."""
        n_rows, meta_state = mark
        self._n_alive -= int(self._alive[n_rows : self._n].sum())
        self._alive[n_rows : self._n] = False
        self._ids.truncate(n_rows)
        self._n = n_rows
        self.meta.restore(meta_state)
        self._masks.clear()

    def kill(self, rows: np.ndarray) -> None:
        """Mark live ``rows`` deleted."""
        rows = np.asarray(rows, dtype=np.int64)
        self._n_alive -= int(self._alive[rows].sum())
        self._ids.drop(rows)
        self._alive[rows] = False
        self._masks.clear()

    def compact(self) -> np.ndarray:
        """Drop dead rows and renumber; returns the (old n_rows,) bool mask of rows kept."""
        keep = self._alive[: self._n].copy()
        kept = [i for i, k in zip(self._ids.to_list(self._n), keep) if k]
        self._ids = IdTable(kept)
        self._n = self._n_alive = len(kept)
        self._alive = np.ones(self._n, dtype=bool)
        self.meta.compact(keep)
        self._masks.clear()
        return keep

    # ------------------------------------------------------------------------- persistence

    def to_arrow(self) -> pa.Table:
        """One row per index row: ``id`` (null where deleted) then the metadata fields."""
        meta = self.meta.table()
        ids = pa.array(self._ids.to_list(self._n), type=pa.string())
        return meta.add_column(0, "id", ids)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Catalog:
        """Inverse of :meth:`to_arrow`."""
        cat = cls()
        column = table.column("id")
        cat._ids = IdTable.from_arrow(column)
        cat._n = len(column)
        cat._alive = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        cat._n_alive = int(cat._alive.sum())
        cat.meta = MetadataTable(table.drop_columns(["id"]))
        return cat
