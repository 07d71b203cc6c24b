"""The Hugging Face ``Slep/LAION-RVS-Fashion`` metadata layout (images by URL only).

``data/{train,validation,test}/products_{simple,complex}_metadata.parquet`` and
``data/{validation,test}/distractors_metadata.parquet``. Rows are grouped into products by
``PRODUCT_ID`` without assuming any order, in bounded memory: a first pass reads only the
``PRODUCT_ID`` columns; the sorted distinct ids are cut into ranges of at most ``max_rows``
rows; each range is then gathered by one streamed pass over the files. Memory: the id columns
(8 bytes a row for integer ids) plus one range of rows; time: one pass per range (a single
pass whenever the split has at most ``max_rows`` rows, the default being 250,000).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from referred.data.assemble import build_distractor, build_product, clean_meta, is_missing
from referred.data.base import Dataset
from referred.data.files import (
    display_path,
    id_array,
    iter_parquet_batches,
    label_values,
    open_parquet,
    pandas_index,
    read_column,
    require_column,
)
from referred.data.records import (
    DataFileError,
    Distractor,
    ImageRecord,
    ImageType,
    Product,
    ReadStats,
)

#: Canonical split → folder under ``data/``.
HF_SPLIT_DIRS: dict[str, str] = {"train": "train", "valid": "validation", "test": "test"}
SIMPLE_FILE = "products_simple_metadata.parquet"
COMPLEX_FILE = "products_complex_metadata.parquet"
DISTRACTOR_FILE = "distractors_metadata.parquet"
DEFAULT_MAX_ROWS = 250_000


def key_ranges(keys: pa.Array, max_rows: int) -> list[tuple[Any, Any]]:
    """Cut the distinct values of ``keys`` (sorted) into ranges of at most ``max_rows`` rows.

    A value with more rows than ``max_rows`` gets a range of its own. Returns ``[(lo, hi)]``,
    inclusive bounds, in increasing order.
    """
    if len(keys) == 0:
        return []
    counts = pc.value_counts(keys)
    values, freqs = counts.field("values"), counts.field("counts")
    order = pc.sort_indices(values)
    values = values.take(order).to_pylist()
    freqs = freqs.take(order).to_pylist()
    ranges: list[tuple[Any, Any]] = []
    start, rows = 0, 0
    for i, n in enumerate(freqs):
        if rows and rows + n > max_rows:
            ranges.append((values[start], values[i - 1]))
            start, rows = i, 0
        rows += n
    ranges.append((values[start], values[-1]))
    return ranges


def _key_column(path: Path, key: str, shown: str, stats: ReadStats) -> tuple[str, pa.Array]:
    column = require_column(open_parquet(path).schema_arrow.names, [key], key, shown)
    array = id_array(read_column(path, column))
    if array.null_count:
        stats.error("bad-metadata", shown, None, f"{array.null_count} rows without {key} skipped")
    return column, array.drop_null()


def iter_grouped_rows(
    files: Sequence[tuple[Path, str]],
    key: str = "PRODUCT_ID",
    *,
    stats: ReadStats,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Iterator[tuple[Any, list[tuple[dict[str, Any], str]]]]:
    """Yield ``(key value, [(row, shown file), ...])`` for each distinct ``key``, sorted by key.

    ``files`` are ``(path, name shown in reports)``; a key's rows may span several files and
    appear in any order. Rows keep their files' order within a key.
    """
    names, arrays = [], []
    for path, shown in files:
        name, array = _key_column(path, key, shown, stats)
        names.append(name)
        arrays.append(array)
    as_string = len({a.type for a in arrays}) > 1
    if as_string:
        arrays = [a.cast(pa.string()) for a in arrays]
    keys = pa.chunked_array(arrays, type=arrays[0].type if arrays else pa.int64())
    ranges = key_ranges(keys, max_rows)
    del arrays, keys
    for lo, hi in ranges:
        groups: dict[Any, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        for (path, shown), name in zip(files, names):
            for batch in iter_parquet_batches(path):
                column = id_array(batch.column(batch.schema.get_field_index(name)))
                if as_string:
                    column = column.cast(pa.string())
                if len(ranges) > 1:
                    mask = pc.and_(pc.greater_equal(column, lo), pc.less_equal(column, hi))
                    batch, column = batch.filter(mask), column.filter(mask)
                for value, row in zip(column.to_pylist(), batch.to_pylist()):
                    if value is not None:
                        groups[value].append((clean_meta(row), shown))
        for value in sorted(groups):
            yield value, groups[value]


def image_from_row(
    row: dict[str, Any], default: ImageType | None, shown: str, item: str, stats: ReadStats
) -> ImageRecord | None:
    """An :class:`ImageRecord` from a metadata row (no bytes), or ``None`` for a bad TYPE.

    ``default`` is the TYPE of rows without one (``None``: TYPE is required).
    """
    raw = row.get("TYPE")
    if is_missing(raw) and default is None:
        stats.error("bad-metadata", shown, item, f"image {row.get('URL')!r} has no TYPE")
        return None
    try:
        kind = default if is_missing(raw) else ImageType.parse(raw)
    except ValueError as exc:
        stats.error("bad-metadata", shown, item, str(exc))
        return None
    url = row.get("URL")
    return ImageRecord(url=None if is_missing(url) else str(url), type=kind, meta=row)


class HFMetadataDataset(Dataset):
    """Reader of the Hugging Face metadata folder; yielded images have URLs but no bytes."""

    layout = "hf"

    def __init__(self, root: Path, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        super().__init__(root)
        self.max_rows = max_rows

    def _dir(self, split: str) -> Path:
        return self.root / "data" / HF_SPLIT_DIRS[split]

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in HF_SPLIT_DIRS if (self._dir(s) / SIMPLE_FILE).is_file())

    @property
    def distractor_splits(self) -> tuple[str, ...]:
        return tuple(s for s in HF_SPLIT_DIRS if (self._dir(s) / DISTRACTOR_FILE).is_file())

    def products(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Product]:
        split = self._split(split, self.splits)
        stats = stats if stats is not None else ReadStats()
        files = []
        for name in (SIMPLE_FILE, COMPLEX_FILE):
            path = self._dir(split) / name
            if not path.is_file():
                raise DataFileError(f"missing file: {path} (the {split} split needs {name})")
            files.append((path, display_path(path, self.root)))
        defaults = {files[0][1]: ImageType.SIMPLE, files[1][1]: ImageType.COMPLEX}
        grouped = iter_grouped_rows(files, stats=stats, max_rows=self.max_rows)
        for pid, rows in grouped:
            item = str(pid)
            images = [
                image_from_row(row, defaults[shown], shown, item, stats) for row, shown in rows
            ]
            product = build_product(
                item,
                [im for im in images if im is not None],
                split=split,
                file=rows[0][1],
                stats=stats,
                verify=verify,
            )
            if product is not None:
                yield product

    def distractors(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Distractor]:
        split = self._split(split, self.distractor_splits, "distractor split")
        stats = stats if stats is not None else ReadStats()
        path = self._dir(split) / DISTRACTOR_FILE
        yield from iter_metadata_distractors(path, display_path(path, self.root), split, stats)


def iter_metadata_distractors(
    path: Path, shown: str, split: str, stats: ReadStats
) -> Iterator[Distractor]:
    """Distractors from a metadata parquet; ids are the pandas row labels (or positions).

    Row labels may be stored with any type (see :func:`referred.data.files.label_values`); a
    row without a label, or a file without a stored index, is known by its position.
    """
    index_col, start, step = pandas_index(open_parquet(path))
    labels = label_values(read_column(path, index_col)) if index_col else None
    position = 0
    for batch in iter_parquet_batches(path):
        rows = batch.drop_columns([index_col]) if index_col else batch
        for row in rows.to_pylist():
            label = labels[position] if labels is not None else ""
            if label == "":
                label = start + step * position
            position += 1
            image = image_from_row(clean_meta(row), ImageType.SIMPLE, shown, str(label), stats)
            if image is not None:
                found = build_distractor(str(label), image, split=split, file=shown, stats=stats)
                if found is not None:
                    yield found
