"""``faiss:<index_factory string>``: approximate search with faiss (HNSW, IVF, SQ, PQ).

Faiss ids are our rows. IVF indexes get rows through ``add_with_ids`` and delete for real with
``remove_ids``; the others (HNSW, Flat, SQ, PQ) number rows by insertion and delete by
tombstone: a bitmap ``IDSelector`` keeps dead rows out of results until ``compact()`` rebuilds.

Filters: a filter keeping at most ``exact_filter_rows`` rows is answered by exact scoring of
exactly those rows. A wider filter searches the faiss index with a bitmap ``IDSelector`` (with
efSearch / nprobe scaled up by 1 / selectivity, capped); any query that still gets fewer than
min(k, matching rows) results is redone exactly. So a filtered search always returns k results
from the filtered set when k rows match.

Training: IVF, PQ and SQ indexes must be trained. ``train(vectors)`` does it explicitly (at
least ``hard_min`` vectors: nlist for IVF, 2**nbits for PQ). Otherwise the first ``add`` trains
on its own vectors when it brings at least ``train_min`` of them (default 39 × hard_min,
at least 1,000), and raises NotTrainedError before changing anything when it brings fewer.

Float vectors: kept beside the index (``vectors.npy``, memory-mapped after load) unless the faiss
index stores them exactly itself (``Flat``, ``HNSW<M>[,Flat]``). They serve ``get``, ``rerank``,
exact filtered search and ``compact``. With ``rerank=R`` the index returns max(k, R) candidates
that are re-scored exactly from those vectors.

Index types that take no search parameters (non-IVF fast-scan PQ such as ``PQ32x4fs``) cannot
use a selector: their filtered searches, and their searches once rows were deleted, are exact.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from referred.index.base import check_vectors
from referred.index.errors import (
    CorruptIndexError,
    MissingDependencyError,
    NotTrainedError,
    SpecError,
)
from referred.index.local import CatalogIndex, load_catalog
from referred.index.vectors import RowSource, VectorStore, exact_search

try:
    import faiss
except ImportError as exc:  # pragma: no cover - exercised only without faiss
    raise MissingDependencyError(
        "the faiss backend needs faiss-cpu: pip install 'referred[faiss]'"
    ) from exc

log = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
VECTORS_FILE = "vectors.npy"
#: Cap on how far a selective filter may scale efSearch / nprobe up.
MAX_SEARCH_SCALE = 16


def _core(index: Any) -> Any:
    """The index under any IndexPreTransform wrappers, downcast to its concrete class."""
    idx = faiss.downcast_index(index)
    while isinstance(idx, faiss.IndexPreTransform):
        idx = faiss.downcast_index(idx.index)
    return idx


class FaissIndex(CatalogIndex):
    """A faiss index built from an ``index_factory`` string, inner-product metric."""

    backend: ClassVar[str] = "faiss"
    RUNTIME_OPTIONS: ClassVar[tuple[str, ...]] = (
        "rerank",
        "ef_search",
        "nprobe",
        "threads",
        "blas_threshold",
        "exact_filter_rows",
    )

    def __init__(
        self,
        dim: int,
        factory: str,
        *,
        rerank: int = 0,
        ef_search: int = 128,
        ef_construction: int = 40,
        nprobe: int = 32,
        threads: int = 1,
        blas_threshold: int = 20,
        exact_filter_rows: int = 20_000,
        train_min: int | None = None,
        store_vectors: bool | None = None,
        spec: str | None = None,
    ) -> None:
        super().__init__(spec or f"faiss:{factory}", dim)
        if "IDMap" in factory:
            raise SpecError(f"drop IDMap from {factory!r}: referred maps ids itself")
        try:
            self._index = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            msg = str(exc).strip().splitlines()[-1]
            raise SpecError(
                f"faiss cannot build {factory!r} (dim {self.dim}): {msg}; see the faiss "
                "index_factory docs, e.g. 'HNSW32', 'IVF4096,SQ8', 'IVF4096,PQ64'"
            ) from None
        self.factory = factory
        self.ef_construction = int(ef_construction)
        self._inspect()
        self._needs_training = not self._index.is_trained
        self._takes_params = True  # False for index types that refuse SearchParameters
        self._selectors: list[tuple[np.ndarray, Any]] = []  # (mask, IDSelectorBitmap), newest first
        self.train_min = max(self.hard_min, train_min or max(39 * self.hard_min, 1000))
        exact_storage = self._exact_storage()
        self.store_vectors = not exact_storage if store_vectors is None else bool(store_vectors)
        if rerank and not self.store_vectors:
            raise SpecError("rerank needs the float vectors: leave store_vectors unset or True")
        if not self.store_vectors and not exact_storage:
            raise SpecError(f"{factory!r} stores lossy codes only; store_vectors must be True")
        self._store = VectorStore(self.dim) if self.store_vectors else None
        self.configure(
            rerank=rerank,
            ef_search=ef_search,
            nprobe=nprobe,
            threads=threads,
            blas_threshold=blas_threshold,
            exact_filter_rows=exact_filter_rows,
        )

    def configure(self, **options: Any) -> None:
        """Change search-time options (those in RUNTIME_OPTIONS) on a live index."""
        bad = sorted(set(options) - set(self.RUNTIME_OPTIONS))
        if bad:
            raise SpecError(f"unknown option(s) {bad}; accepted: {list(self.RUNTIME_OPTIONS)}")
        for name, value in options.items():
            low = 1 if name in ("ef_search", "nprobe", "threads") else 0
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise SpecError(f"option {name} must be an int >= {low}, got {value!r}")
            setattr(self, name, int(value))
        if self.rerank and self._store is None:
            raise SpecError("rerank needs stored float vectors (store_vectors=True)")
        faiss.omp_set_num_threads(max(1, self.threads))
        # Below this many queries faiss scores with its own SIMD kernels instead of BLAS;
        # the 128000 default makes small batches ~5x slower on this class of CPU.
        faiss.cvar.distance_compute_blas_threshold = self.blas_threshold

    def options(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "ef_construction": self.ef_construction,
            "train_min": self.train_min,
            "store_vectors": self.store_vectors,
            **{name: getattr(self, name) for name in self.RUNTIME_OPTIONS},
        }

    def _inspect(self) -> None:
        """Find the IVF / HNSW / PQ parts that decide ids, deletes, params and training."""
        self._core = _core(self._index)
        if isinstance(self._core, faiss.IndexHNSW) and self._index.ntotal == 0:
            self._core.hnsw.efConstruction = self.ef_construction
        self._ivf = faiss.try_extract_index_ivf(self._index)
        self._pretransform = isinstance(faiss.downcast_index(self._index), faiss.IndexPreTransform)
        if getattr(self._core, "do_polysemous_training", False):
            # Polysemous codes only serve Hamming pre-filtering, which we never use, and make
            # PQ training ~30x slower; same as the "np" suffix.
            self._core.do_polysemous_training = False
        pq = getattr(self._core, "pq", None)
        hard = [1, self._ivf.nlist if self._ivf is not None else 1]
        hard.append(pq.ksub if pq is not None else 1)
        if self._pretransform:
            hard.append(self.dim)
        self.hard_min = max(hard)

    def _exact_storage(self) -> bool:
        if self._pretransform:
            return False
        if isinstance(self._core, faiss.IndexHNSW):
            return isinstance(faiss.downcast_index(self._core.storage), faiss.IndexFlat)
        return isinstance(self._core, faiss.IndexFlat)

    # -------------------------------------------------------------------------- training

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        """Train on (n, dim) float32 vectors, n >= hard_min, before the first add.

        A no-op for indexes that need no training (Flat, HNSW<M>[,Flat]); retrains an empty
        trained index from scratch.
        """
        vectors = check_vectors(vectors, self.dim)
        if not self._needs_training:
            return
        if self._catalog.n_rows:
            raise NotTrainedError(f"{self.spec} already holds vectors; train before the first add")
        if len(vectors) < self.hard_min:
            raise NotTrainedError(
                f"{self.spec} needs at least {self.hard_min} training vectors "
                f"(recommended {39 * self.hard_min}), got {len(vectors)}"
            )
        if self._index.is_trained:
            self._index = faiss.index_factory(self.dim, self.factory, faiss.METRIC_INNER_PRODUCT)
            self._inspect()
        faiss.omp_set_num_threads(max(1, self.threads))
        self._index.train(vectors)

    def _before_insert(self, vectors: np.ndarray) -> None:
        if self._index.is_trained:
            return
        if len(vectors) < self.train_min:
            raise NotTrainedError(
                f"{self.spec} must be trained first: this add brings {len(vectors)} vectors, "
                f"fewer than train_min={self.train_min}; call train(sample) with at least "
                f"{self.hard_min} vectors or add a larger first batch"
            )
        self.train(vectors)

    # ----------------------------------------------------------------- storage and search

    def _add_rows(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        faiss.omp_set_num_threads(max(1, self.threads))
        n_stored = len(self._store) if self._store is not None else 0
        if self._store is not None:
            self._store.append(vectors)
        try:
            if self._ivf is not None:
                self._index.add_with_ids(vectors, rows)
            else:
                assert rows[0] == self._index.ntotal, "catalogue and faiss rows out of step"
                self._index.add(vectors)
        except BaseException:
            if self._store is not None:
                self._store.truncate(n_stored)
            raise

    def _remove_rows(self, rows: np.ndarray) -> None:
        if self._ivf is not None:
            self._index.remove_ids(faiss.IDSelectorBatch(rows))

    def _source(self) -> RowSource:
        return self._store if self._store is not None else _FlatStorageView(self._core)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._source().take(rows)

    def _search_rows(
        self, queries: np.ndarray, k: int, candidates: np.ndarray | None, filtered: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        n_match = len(self) if candidates is None else int(np.count_nonzero(candidates))
        if filtered and n_match <= self.exact_filter_rows:
            return exact_search(self._source(), queries, k, candidates)
        # IVF holds no dead rows, so it needs a selector only for a filter.
        mask = candidates if (filtered or self._ivf is None) else None
        scale = min(MAX_SEARCH_SCALE, len(self) / max(n_match, 1)) if filtered else 1.0
        fetch = max(k, self.rerank)
        params, keep_alive = self._params(mask, fetch, scale)
        if params is not None and not self._takes_params:
            return exact_search(self._source(), queries, k, candidates)
        faiss.omp_set_num_threads(max(1, self.threads))
        try:
            scores, rows = self._index.search(queries, fetch, params=params)
        except RuntimeError as exc:
            if params is None or "not supported" not in str(exc):
                raise
            log.warning("%s takes no IDSelector; filtered searches are exact", self.spec)
            self._takes_params = False
            return exact_search(self._source(), queries, k, candidates)
        del keep_alive
        scores[rows < 0] = -np.inf
        if self.rerank:
            scores, rows = self._rerank(queries, rows, k)
        else:
            scores, rows = scores[:, :k], rows[:, :k]
        short = np.count_nonzero(rows >= 0, axis=1) < min(k, n_match)
        if short.any():  # the graph / probed lists ran out of matching rows: answer exactly
            scores[short], rows[short] = exact_search(self._source(), queries[short], k, candidates)
        return scores, rows

    def _params(self, mask: np.ndarray | None, fetch: int, scale: float) -> tuple[Any, list]:
        """Search parameters (None when defaults do) and the objects they point to."""
        keep_alive: list = []
        if isinstance(self._core, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW()
            params.efSearch = math.ceil(max(self.ef_search, fetch) * scale)
        elif self._ivf is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = min(self._ivf.nlist, math.ceil(self.nprobe * scale))
        elif mask is None:
            return None, keep_alive
        else:
            params = faiss.SearchParameters()
        if mask is not None:
            sel = self._selector(mask)
            params.sel = sel
            keep_alive.append(sel)
        if self._pretransform:
            outer = faiss.SearchParametersPreTransform()
            outer.index_params = params
            keep_alive.append(params)
            params = outer
        return params, keep_alive

    def _selector(self, mask: np.ndarray) -> Any:
        """A bitmap IDSelector of ``mask``'s rows, cached by mask identity (the catalogue
        hands out the same mask object for a filter until the index changes)."""
        for cached_mask, sel in self._selectors:
            if cached_mask is mask:
                return sel
        sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        self._selectors = [(mask, sel), *self._selectors[:7]]
        return sel

    def _rerank(
        self, queries: np.ndarray, rows: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores for candidate ``rows`` (nq, c); returns the best k, -inf / -1 padded."""
        nq, c = rows.shape
        exact = np.empty((nq, c), dtype=np.float32)
        step = max(1, (1 << 22) // (c * self.dim))  # gather <= 16 MiB of vectors at a time
        for s in range(0, nq, step):
            r = rows[s : s + step]
            vecs = self._store.take(np.where(r >= 0, r, 0).ravel()).reshape(len(r), c, self.dim)
            exact[s : s + step] = np.einsum("qd,qcd->qc", queries[s : s + step], vecs)  # (b, c)
        exact[rows < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(exact, order, axis=1).astype(np.float32)
        rows = np.where(np.isneginf(scores), -1, np.take_along_axis(rows, order, axis=1))
        return scores, rows

    def _compact(self) -> None:
        keep = self._catalog.alive.copy()
        source, kept = self._source(), np.flatnonzero(keep)
        fresh = faiss.clone_index(self._index)
        fresh.reset()
        store = VectorStore(self.dim) if self._store is not None else None
        for start in range(0, len(kept), 1 << 15):
            block = source.take(kept[start : start + (1 << 15)])
            ids = np.arange(start, start + len(block), dtype=np.int64)
            if self._ivf is not None:
                fresh.add_with_ids(block, ids)
            else:
                fresh.add(block)
            if store is not None:
                store.append(block)
        self._index, self._store, self._selectors = fresh, store, []
        self._inspect()
        self._catalog.compact()

    # ----------------------------------------------------------------------- persistence

    def _write_payload(self, directory: Path, keep: np.ndarray | None) -> None:
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        if self._store is not None:
            self._store.save(directory / VECTORS_FILE)

    @classmethod
    def _load(
        cls, directory: Path, manifest: dict[str, Any], *, mmap: bool = True, **options: Any
    ) -> FaissIndex:
        saved = dict(manifest.get("options", {}))
        opts = cls._runtime_overrides(saved, options)
        factory = opts.pop("factory")
        index = cls(manifest["dim"], factory, spec=manifest["spec"], **opts)
        index._catalog = load_catalog(directory, manifest)
        index.info = dict(manifest.get("info") or {})
        try:
            index._index = faiss.read_index(str(directory / INDEX_FILE))
        except RuntimeError as exc:
            raise CorruptIndexError(f"cannot read {directory / INDEX_FILE}: {exc}") from None
        index._inspect()
        expected = index._catalog.n_alive if index._ivf is not None else index._catalog.n_rows
        if index._index.d != index.dim or index._index.ntotal != expected:
            raise CorruptIndexError(
                f"{directory / INDEX_FILE} holds {index._index.ntotal} vectors of dim "
                f"{index._index.d}; expected {expected} of dim {index.dim}"
            )
        if index.store_vectors:
            index._store = VectorStore.load(
                directory / VECTORS_FILE, index.dim, index._catalog.n_rows, mmap=mmap
            )
        return index


class _FlatStorageView:
    """RowSource over the float32 rows a Flat / HNSW-Flat faiss index holds, without copying.

    The view is taken per call: an ``add`` may reallocate faiss's buffer.
    """

    def __init__(self, core: Any) -> None:
        flat = faiss.downcast_index(core.storage) if isinstance(core, faiss.IndexHNSW) else core
        n, d = int(flat.ntotal), int(flat.d)
        self._rows = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)  # (n, d) view

    def __len__(self) -> int:
        return len(self._rows)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._rows[np.asarray(rows, dtype=np.int64)]

    def block(self, start: int, stop: int) -> np.ndarray:
        return self._rows[start:stop]
