"""Precomputed embeddings in the paper-era layout: parquet files keyed by image URL.

Each file has a ``url`` column and an ``embeddings`` column (``list<float>`` or
``fixed_size_list<float>``): ``products_embs.parquet`` holds the test queries and targets,
``dist*.parquet`` the distractors. Rows are matched to the metadata by URL, so the files may be
in any order; distractors are streamed one row group at a time (each row group is read once
when the files follow the metadata order).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from referred.data.files import plain_array

log = logging.getLogger(__name__)


class MissingEmbeddingsError(LookupError):
    """Some metadata URLs have no embedding in the parquet files."""

    def __init__(self, missing: Sequence[str], total: int, where: str):
        self.missing = list(missing)
        shown = ", ".join(self.missing[:5])
        super().__init__(
            f"{len(self.missing)} of {total} URLs have no embedding in {where}; first: {shown}"
        )


def embedding_matrix(column: pa.Array | pa.ChunkedArray, where: str = "") -> np.ndarray:
    """A list or fixed-size-list column of floats as an ``(n, d)`` float32 array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        raise ValueError(f"{where}: embeddings column has type {arr.type}; expected a float list")
    if arr.null_count:
        raise ValueError(f"{where}: {arr.null_count} rows have a null embedding")
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if n else 0
        if n and np.any(lengths != d):
            raise ValueError(
                f"{where}: embeddings have different lengths ({lengths.min()}..{lengths.max()})"
            )
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(n, d)


class ParquetEmbeddings:
    """URL-indexed embeddings spread over one or more parquet files.

    Args:
        paths: parquet files (e.g. ``sorted(glob("dist*.parquet"))``).
        url_column, embedding_column: column names.
        cache_row_groups: decoded row groups kept in memory.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        url_column: str = "url",
        embedding_column: str = "embeddings",
        cache_row_groups: int = 2,
    ):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no parquet files given")
        self.embedding_column = embedding_column
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, cache_row_groups)
        self._reads: dict[int, int] = {}
        urls, starts, groups = [], [0], []  # groups: (file index, row group index)
        for fi, path in enumerate(self.paths):
            meta = pq.ParquetFile(path)
            names = meta.schema_arrow.names
            for col in (url_column, embedding_column):
                if col not in names:
                    raise ValueError(f"{path}: no column {col!r}; columns are {names}")
            for gi in range(meta.num_row_groups):
                groups.append((fi, gi))
                starts.append(starts[-1] + meta.metadata.row_group(gi).num_rows)
            column = pq.read_table(path, columns=[url_column]).column(0)
            urls.append(plain_array(column).cast(pa.string()))  # any tool's string type
        self._urls = pa.concat_arrays(urls) if urls else pa.array([], pa.string())
        self._starts = np.asarray(starts, dtype=np.int64)
        self._groups = groups

    def __len__(self) -> int:
        return len(self._urls)

    def find(self, urls: Sequence[str] | pa.Array) -> np.ndarray:
        """Global row of each URL (first occurrence), ``-1`` where it has no embedding."""
        if isinstance(urls, (pa.Array, pa.ChunkedArray)):
            wanted = plain_array(urls).cast(pa.string())
        else:
            wanted = pa.array(urls.tolist() if isinstance(urls, np.ndarray) else list(urls))
            wanted = wanted.cast(pa.string())
        rows = pc.index_in(wanted, value_set=self._urls)
        return rows.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def locate(self, urls: Sequence[str]) -> np.ndarray:
        """Global row of each URL (first occurrence); :class:`MissingEmbeddingsError` if any
        URL is absent."""
        rows = self.find(urls)
        if np.any(rows < 0):
            missing = [str(urls[i]) for i in np.flatnonzero(rows < 0)]
            where = self.paths[0].name if len(self.paths) == 1 else f"{len(self.paths)} files"
            raise MissingEmbeddingsError(missing, len(rows), where)
        return rows

    def _row_group(self, g: int) -> np.ndarray:
        if g in self._cache:
            self._cache.move_to_end(g)
            return self._cache[g]
        self._reads[g] = self._reads.get(g, 0) + 1
        if self._reads[g] == 2:
            log.warning(
                "row group %d of %s is read again: the files are not in metadata order; "
                "streaming is faster on files sorted like the metadata",
                *self._groups[g],
            )
        fi, gi = self._groups[g]
        table = pq.ParquetFile(self.paths[fi]).read_row_group(gi, columns=[self.embedding_column])
        mat = embedding_matrix(table.column(0), f"{self.paths[fi]} row group {gi}")
        self._cache[g] = mat
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mat

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), d)`` float32 embeddings of global rows (from :meth:`find`)."""
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        out: np.ndarray | None = None
        for g in np.unique(groups):
            mat = self._row_group(int(g))
            if out is None:
                out = np.empty((rows.size, mat.shape[1]), dtype=np.float32)
            elif mat.shape[1] != out.shape[1]:
                raise ValueError(
                    f"embedding sizes differ between row groups: {mat.shape[1]} and {out.shape[1]}"
                )
            sel = groups == g
            out[sel] = mat[rows[sel] - self._starts[g]]
        return out if out is not None else np.zeros((0, 0), np.float32)

    def read(self, urls: Sequence[str]) -> np.ndarray:
        """``(len(urls), d)`` float32 embeddings in the order of ``urls`` (queries, targets)."""
        return self.gather(self.locate(urls))

    def blocks(
        self, urls: Sequence[str], categories: np.ndarray, block_size: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``((b, d) embeddings, (b,) categories)`` in the order of ``urls`` (the
        distractor metadata order): a block source for the ranking. All URLs are checked
        before the first block."""
        cats = np.asarray(categories)
        if cats.shape != (len(urls),):
            raise ValueError(f"categories must have shape ({len(urls)},), got {cats.shape}")
        rows = self.locate(urls)  # fails here, before streaming, if a URL is missing

        def stream() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for start in range(0, rows.size, block_size):
                stop = start + block_size
                yield self.gather(rows[start:stop]), cats[start:stop]

        return stream()


def read_embeddings(path: str | Path, urls: Sequence[str]) -> np.ndarray:
    """Embeddings of ``urls`` from one parquet file (e.g. ``products_embs.parquet``)."""
    return ParquetEmbeddings([path]).read(urls)
