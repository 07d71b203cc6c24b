"""What the in-process backends (flat, faiss) share: ids, metadata, checks, search, persistence.

A backend subclasses :class:`CatalogIndex` and stores vectors by row; this class keeps the
:class:`~referred.index.catalog.Catalog` (ids ↔ rows, tombstones, metadata), validates every
call before anything changes, and turns rows back into the caller's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from referred.index.base import (
    Filter,
    Metadata,
    PathLike,
    Records,
    SearchResult,
    check_ids,
    check_k,
    check_vectors,
    pad_result,
    warn_if_not_normalised,
)
from referred.index.catalog import Catalog
from referred.index.errors import CorruptIndexError, EmptyIndexError, SpecError
from referred.index.metadata import to_arrow
from referred.index.storage import checked_info, save_atomically

ROWS_FILE = "rows.parquet"


class CatalogIndex:
    """Base of the flat and faiss backends; see :class:`referred.index.base.VectorIndex`."""

    backend: ClassVar[str]
    #: Options that ``load_index(path, **options)`` may change on a saved index.
    RUNTIME_OPTIONS: ClassVar[tuple[str, ...]] = ()
    #: Concurrent ``search`` / ``get`` calls from several threads are safe (no writes meanwhile).
    thread_safe_search: ClassVar[bool] = True

    def __init__(self, spec: str, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise SpecError(f"dim must be a positive int, got {dim!r}")
        self.spec = spec
        self.dim = int(dim)
        self._catalog = Catalog()
        self._checked_norms = False
        #: Free JSON-serialisable notes saved in the manifest (e.g. which model built it).
        self.info: dict[str, Any] = {}

    # ---------------------------------------------------------------- hooks for backends

    def _before_insert(self, vectors: np.ndarray) -> None:
        """Raise before anything changes if ``vectors`` cannot be inserted (e.g. untrained)."""

    def _add_rows(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def _remove_rows(self, rows: np.ndarray) -> None:
        """Called before the catalog marks ``rows`` dead."""

    def _search_rows(
        self, queries: np.ndarray, k: int, candidates: np.ndarray | None, filtered: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) of shape (nq, k), -inf / -1 padded; k <= live rows."""
        raise NotImplementedError

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _compact(self) -> None:
        raise NotImplementedError

    def _after_remove(self) -> None:
        """Maintenance after rows died (flat compacts here, so searches never write)."""

    def _write_payload(self, directory: Path, keep: np.ndarray | None) -> None:
        raise NotImplementedError

    def _save_keep(self) -> np.ndarray | None:
        """(n_rows,) bool of rows to save, or None for all rows (tombstones included)."""
        return None

    def options(self) -> dict[str, Any]:
        """The backend options, as saved in the manifest."""
        return {}

    # ------------------------------------------------------------------------- protocol

    def __len__(self) -> int:
        return self._catalog.n_alive

    def __contains__(self, id_: object) -> bool:
        return id_ in self._catalog

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, dim={self.dim}, count={len(self)})"

    @property
    def fields(self) -> tuple[str, ...]:
        return self._catalog.meta.fields

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, vectors: np.ndarray) -> None:
        """No training needed; checks ``vectors`` (n, dim) only."""
        check_vectors(vectors, self.dim)

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        ids, vectors, meta = self._prepare(ids, vectors, metadata)
        self._catalog.check_absent(ids)
        if ids:
            self._before_insert(vectors)
            self._insert(ids, vectors, meta)

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        ids, vectors, meta = self._prepare(ids, vectors, metadata)
        if not ids:
            return
        self._before_insert(vectors)
        old = self._catalog.existing_rows(ids)
        if len(old):
            self._remove_rows(old)
            self._catalog.kill(old)
        self._insert(ids, vectors, meta)
        if len(old):
            self._after_remove()

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(check_ids(ids, unique=False)))
        rows = self._catalog.rows_of(ids)
        self._remove_rows(rows)
        self._catalog.kill(rows)
        self._after_remove()

    def search(self, queries: np.ndarray, k: int, filter: Filter | None = None) -> SearchResult:
        queries = check_vectors(queries, self.dim, what="queries")
        k = check_k(k)
        if filter:
            self._catalog.meta.normalise_filter(filter)  # unknown fields fail even when empty
        if len(self) == 0:
            raise EmptyIndexError(f"search on an empty index ({self.spec}); add vectors first")
        candidates = self._catalog.candidates(filter)
        k_eff = min(k, len(self))
        scores, rows = self._search_rows(queries, k_eff, candidates, filtered=bool(filter))
        out_s, out_i = pad_result(len(queries), k)
        out_s[:, :k_eff] = scores
        out_i[:, :k_eff] = self._catalog.ids_of(rows)
        return SearchResult(out_s, out_i)

    def get(self, ids: Sequence[str], *, vectors: bool = True) -> Records:
        ids = check_ids(ids, unique=False)
        rows = self._catalog.rows_of(ids)
        vecs = self._vectors(rows) if vectors else None
        return Records(ids, vecs, self._catalog.records(rows))

    def compact(self) -> None:
        """Drop deleted rows for good (rebuilds a faiss index from the kept vectors)."""
        if self._catalog.n_dead:
            self._compact()

    def save(self, path: PathLike) -> None:
        keep = self._save_keep()
        table = self._catalog.to_arrow()
        if keep is not None:
            table = table.filter(pa.array(keep))
        manifest = {
            "backend": self.backend,
            "spec": self.spec,
            "dim": self.dim,
            "count": len(self),
            "rows": table.num_rows,
            "options": self.options(),
            "info": checked_info(self.info),
        }

        def write(directory: Path) -> None:
            pq.write_table(table, directory / ROWS_FILE)
            self._write_payload(directory, keep)

        save_atomically(path, write, manifest)

    # -------------------------------------------------------------------------- helpers

    def _prepare(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None
    ) -> tuple[list[str], np.ndarray, pa.Table]:
        ids = check_ids(ids)
        vectors = check_vectors(vectors, self.dim, n=len(ids))
        meta = to_arrow(metadata, ids)
        self._catalog.meta.check_compatible(meta)
        if not self._checked_norms:
            warn_if_not_normalised(vectors[:1000])
            self._checked_norms = True
        return ids, vectors, meta

    def _insert(self, ids: list[str], vectors: np.ndarray, meta: pa.Table) -> None:
        mark = self._catalog.mark()
        rows = self._catalog.append(ids, meta)
        try:
            self._add_rows(rows, vectors)
        except BaseException:
            self._catalog.rollback(mark)
            raise

    @classmethod
    def _runtime_overrides(cls, saved: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(overrides) - set(cls.RUNTIME_OPTIONS))
        if bad:
            raise SpecError(
                f"load_index cannot change option(s) {bad} of a saved {cls.backend} index; "
                f"accepted: {list(cls.RUNTIME_OPTIONS) or 'none'}"
            )
        return {**saved, **overrides}


def load_catalog(directory: Path, manifest: dict[str, Any]) -> Catalog:
    """Read ``rows.parquet`` and check it against the manifest's row and live counts."""
    try:
        # ParquetFile, not read_table: read_table imports pyarrow.dataset and pandas (~0.5 s
        # of every `referred search` start-up) for nothing a single local file needs
        table = pq.ParquetFile(directory / ROWS_FILE).read()
    except (OSError, pa.ArrowException) as exc:
        raise CorruptIndexError(f"cannot read {directory / ROWS_FILE}: {exc}") from None
    if "id" not in table.column_names or table.num_rows != manifest.get("rows"):
        raise CorruptIndexError(
            f"{directory / ROWS_FILE} has {table.num_rows} rows and columns "
            f"{table.column_names[:5]}; the manifest expects {manifest.get('rows')} rows with 'id'"
        )
    catalog = Catalog.from_arrow(table)
    if catalog.n_alive != manifest["count"]:
        raise CorruptIndexError(
            f"{directory} holds {catalog.n_alive} live ids, the manifest says {manifest['count']}"
        )
    return catalog
