"""Small file helpers shared by readers and writers: atomic outputs, column aliases, URL keys,
and the normalisation of arrow columns written by any tool (pandas 2/3, pyarrow, polars)."""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from referred.data.records import DataFileError

#: Suffix of the temporary name an output is written under before its atomic rename.
PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_output(path: Path, keep_identical: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash leaves at worst a ``*.partial`` file, never a half-written ``path``, so "the output
    exists" means "the output is complete". With ``keep_identical``, an existing ``path`` with
    the same bytes is left untouched (its modification time too).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        yield tmp
        if keep_identical and path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            tmp.unlink()
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it (for problem reports)."""
    if root is not None:
        with contextlib.suppress(ValueError):
            return path.relative_to(root).as_posix()
    return str(path)


def find_column(names: Sequence[str], aliases: Sequence[str]) -> str | None:
    """The first of ``names`` equal to one of ``aliases``, case-insensitively (alias order)."""
    folded = {n.casefold(): n for n in names}
    for alias in aliases:
        if alias.casefold() in folded:
            return folded[alias.casefold()]
    return None


def require_column(names: Sequence[str], aliases: Sequence[str], what: str, file: object) -> str:
    """Like :func:`find_column`, but a missing column raises :class:`DataFileError`."""
    found = find_column(names, aliases)
    if found is None:
        raise DataFileError(
            f"{file}: no {what} column; accepted names (case-insensitive): {', '.join(aliases)}; "
            f"columns found: {', '.join(names) or 'none'}"
        )
    return found


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open a parquet file, turning any failure into :class:`DataFileError` naming it."""
    if not path.is_file():
        raise DataFileError(f"missing file: {path}")
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: not a readable parquet file ({exc})") from exc


def iter_parquet_batches(
    path: Path, columns: Sequence[str] | None = None, batch_size: int = 4096
) -> Iterator[pa.RecordBatch]:
    """Stream ``path`` in record batches; a file damaged mid-way raises ``DataFileError``."""
    pf = open_parquet(path)
    try:
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: parquet file damaged while reading ({exc})") from exc


def read_column(path: Path, name: str) -> pa.ChunkedArray:
    """One whole column of ``path``; a damaged file raises :class:`DataFileError` naming it."""
    pf = open_parquet(path)
    try:
        return pf.read(columns=[name]).column(0)
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: parquet file damaged while reading ({exc})") from exc


def url_key(url: str) -> int:
    """A 64-bit key of a URL (BLAKE2b), to join millions of URLs in compact numpy arrays.

    Collisions are possible in principle; at 10 million URLs their probability is ~3e-6.
    """
    digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def url_keys(urls: Iterable[str]) -> np.ndarray:
    """:func:`url_key` of each URL, shape (N,), dtype uint64."""
    return np.fromiter((url_key(u) for u in urls), dtype=np.uint64)


def sorted_lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each of ``keys`` in ``sorted_keys``, or -1 where absent; shape (len(keys),)."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, keys)
    pos_clipped = np.minimum(pos, len(sorted_keys) - 1)
    found = sorted_keys[pos_clipped] == keys
    return np.where(found, pos_clipped, -1).astype(np.int64)


def natural_shard_order(paths: Iterable[Path]) -> list[Path]:
    """Sort shard files by the integers in their names (``dist_2`` before ``dist_10``)."""

    def key(p: Path) -> tuple:
        digits = "".join(ch if ch.isdigit() else " " for ch in p.stem).split()
        return (tuple(int(d) for d in digits), p.name)

    return sorted(paths, key=key)


def pandas_index(pf: pq.ParquetFile) -> tuple[str | None, int, int]:
    """How the pandas index of a parquet file is stored: ``(column, start, step)``.

    ``column`` names the stored index column (``None`` for a RangeIndex or no pandas metadata);
    row ``i``'s label is then ``start + step * i``.
    """
    meta = pf.schema_arrow.pandas_metadata or {}
    for index in meta.get("index_columns", []):
        if isinstance(index, str) and index in pf.schema_arrow.names:
            return index, 0, 1
        if isinstance(index, dict) and index.get("kind") == "range":
            return None, int(index.get("start", 0)), int(index.get("step", 1))
    if "__index_level_0__" in pf.schema_arrow.names:
        return "__index_level_0__", 0, 1
    return None, 0, 1


def plain_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One column in the plain arrow type readers compare and convert, whatever wrote it.

    Chunks are combined; dictionary (pandas/polars categorical) columns are decoded;
    ``large_string`` (pandas 3, polars) and ``string_view`` become ``string``, their binary
    twins ``binary``; other integer types become ``int64``. A ``null``-typed column (all
    values missing) stays as it is.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return array.cast(pa.string())
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return array.cast(pa.binary())
    if pa.types.is_integer(kind) and kind != pa.int64():
        return array.cast(pa.int64())
    return array


def id_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An id column (PRODUCT_ID, index labels) as ``int64`` or ``string``.

    Besides :func:`plain_array`: floats that are all whole numbers become ``int64`` (pandas
    writes an integer column with a missing value as float64); any other type is cast to
    string; an all-null column becomes a null ``string`` column.
    """
    array = plain_array(column)
    kind = array.type
    if pa.types.is_floating(kind):
        values = array.drop_null().to_numpy(zero_copy_only=False)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return array.cast(pa.int64())
    if kind in (pa.int64(), pa.string()):
        return array
    return array.cast(pa.string())


def label_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Row labels as numpy: ``int64`` for integer labels without nulls, else ``str``.

    A null label becomes ``""`` (callers give such rows their position instead).
    """
    array = id_array(column)
    if array.type == pa.int64() and not array.null_count:
        return array.to_numpy()
    return np.array(["" if v is None else str(v) for v in array.to_pylist()], dtype=str)
