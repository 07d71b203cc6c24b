"""``flat``: exact inner-product search in numpy float32, the default backend.

Search is one matmul per block of rows plus ``argpartition`` (a single block for one query up
to 16M rows). A filter restricts the candidate rows before scoring, so a filter keeping 1% of
the catalogue still returns its exact top-k. Deletes are tombstones, skipped by search; dead rows
are dropped once they pass a quarter of the rows (by that delete / upsert), by ``compact()``, and
on every save. Searches never modify the index.
Saved vectors load memory-mapped; later adds go to an in-RAM tail, never to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from referred.index.local import CatalogIndex, load_catalog
from referred.index.vectors import VectorStore, exact_search

VECTORS_FILE = "vectors.npy"


class FlatIndex(CatalogIndex):
    """Exact search over float32 vectors held in numpy (memory-mapped after ``load_index``)."""

    backend: ClassVar[str] = "flat"
    #: Dead rows are compacted away once they pass this fraction of rows.
    COMPACT_FRACTION: ClassVar[float] = 0.25

    def __init__(self, dim: int, *, spec: str = "flat") -> None:
        super().__init__(spec, dim)
        self._store = VectorStore(self.dim)

    def _add_rows(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        assert rows[0] == len(self._store), "catalogue and vector rows out of step"
        self._store.append(vectors)

    def _search_rows(
        self, queries: np.ndarray, k: int, candidates: np.ndarray | None, filtered: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self._store, queries, k, candidates)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._store.take(rows)

    def _after_remove(self) -> None:
        if self._catalog.n_dead > self.COMPACT_FRACTION * self._catalog.n_rows:
            self._compact()

    def _compact(self) -> None:
        keep = self._catalog.compact()
        self._store = self._store.compacted(keep)

    def _save_keep(self) -> np.ndarray | None:
        return self._catalog.alive if self._catalog.n_dead else None

    def _write_payload(self, directory: Path, keep: np.ndarray | None) -> None:
        self._store.save(directory / VECTORS_FILE, keep)

    @classmethod
    def _load(
        cls, directory: Path, manifest: dict[str, Any], *, mmap: bool = True, **options: Any
    ) -> FlatIndex:
        cls._runtime_overrides(manifest.get("options", {}), options)
        index = cls(manifest["dim"], spec=manifest["spec"])
        index._catalog = load_catalog(directory, manifest)
        index.info = dict(manifest.get("info") or {})
        index._store = VectorStore.load(
            directory / VECTORS_FILE, index.dim, index._catalog.n_rows, mmap=mmap
        )
        return index
