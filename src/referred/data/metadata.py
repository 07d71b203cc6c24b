"""The test split from the metadata files alone: no image needs to be on disk.

What ``referred benchmark --embeddings`` reads, since paper-era embeddings are keyed by image
URL. Two layouts carry the metadata: the Hugging Face one (``data/test/products_*_metadata
.parquet`` and ``data/test/distractors_metadata.parquet``) and the training-code one (the
root ``products_*_metadata.parquet``, rows of every split, and ``distractors_test_metadata
.parquet``). Test products are the rows whose ``SPLIT`` starts with ``test``, grouped by
``PRODUCT_ID`` in their order of first appearance in the simple-image file; distractors are
the rows of the distractor file in order, known by their stored index labels (or positions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from referred.categories import category_index
from referred.data.assemble import build_product, canonical_category
from referred.data.files import (
    display_path,
    find_column,
    id_array,
    iter_parquet_batches,
    label_values,
    open_parquet,
    pandas_index,
    plain_array,
    read_column,
    require_column,
)
from referred.data.hf import (
    COMPLEX_FILE,
    DISTRACTOR_FILE,
    HF_SPLIT_DIRS,
    SIMPLE_FILE,
    image_from_row,
)
from referred.data.records import DataFileError, ImageType, Product, ReadStats
from referred.data.training_layout import ROOT_COMPLEX, ROOT_DISTRACTORS, ROOT_SIMPLE

#: Columns read from the product files (those present).
PRODUCT_COLUMNS = ("URL", "TYPE", "PRODUCT_ID", "SPLIT", "CATEGORY")
PRODUCT_COLUMNS += ("blip2_caption1", "blip2_caption2")


@dataclass(frozen=True)
class MetadataFiles:
    """Where the test metadata of a dataset folder lies."""

    layout: str  # "hf" or "training"
    simple: Path
    complex: Path
    distractors: Path | None  # None: the folder has no distractor metadata


def metadata_files(root: Path) -> MetadataFiles:
    """The test metadata files under ``root``; ``DataFileError`` names what was expected."""
    root = Path(root)
    hf = root / "data" / HF_SPLIT_DIRS["test"]
    if (hf / SIMPLE_FILE).is_file():
        dist = hf / DISTRACTOR_FILE
        return MetadataFiles("hf", hf / SIMPLE_FILE, hf / COMPLEX_FILE, _if_file(dist))
    if (root / ROOT_SIMPLE).is_file():
        dist = root / ROOT_DISTRACTORS
        return MetadataFiles("training", root / ROOT_SIMPLE, root / ROOT_COMPLEX, _if_file(dist))
    raise DataFileError(
        f"{root}: no test metadata; expected data/test/{SIMPLE_FILE} (Hugging Face layout) "
        f"or {ROOT_SIMPLE} at the root (training layout)"
    )


def _if_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _test_rows(path: Path, shown: str, need_split: bool, stats: ReadStats) -> list[dict]:
    """The rows of ``path`` whose SPLIT starts with ``test`` (all rows when the file has no
    SPLIT values and ``need_split`` is off), with ids and strings normalised."""
    if not path.is_file():
        raise DataFileError(f"missing file: {path}")
    names = open_parquet(path).schema_arrow.names
    require_column(names, ["PRODUCT_ID"], "PRODUCT_ID", shown)
    require_column(names, ["URL"], "URL", shown)
    columns = {c: found for c in PRODUCT_COLUMNS if (found := find_column(names, [c]))}
    split_col = columns.get("SPLIT")
    if need_split and split_col is None:
        raise DataFileError(f"{shown}: no SPLIT column, so its test rows cannot be told apart")
    rows: list[dict] = []
    for batch in iter_parquet_batches(path, columns=list(columns.values()), batch_size=65536):
        arrays = {
            c: (id_array if c == "PRODUCT_ID" else plain_array)(batch.column(found))
            for c, found in columns.items()
        }
        split = arrays.get("SPLIT")
        if split is not None and (need_split or split.null_count < len(split)):
            mask = pc.fill_null(pc.starts_with(split.cast(pa.string()), "test"), False)
            arrays = {c: a.filter(mask) for c, a in arrays.items()}
        rows.extend(pa.table(arrays).to_pylist())
    missing = sum(r["PRODUCT_ID"] is None for r in rows)
    if missing:
        stats.error("bad-metadata", shown, None, f"{missing} test rows without PRODUCT_ID skipped")
    return [r for r in rows if r["PRODUCT_ID"] is not None]


def read_test_products(root: Path, stats: ReadStats | None = None) -> list[Product]:
    """The test products of ``root`` from its metadata (images have URLs, no bytes).

    Products follow the order in which their ids first appear in the simple-image file. A
    product without a SIMPLE or a COMPLEX/PARTIAL_COMPLEX row, or without a known category,
    is skipped and recorded in ``stats`` (as every reader does).
    """
    files = metadata_files(root)
    stats = stats if stats is not None else ReadStats()
    need_split = files.layout == "training"
    grouped: dict[str, list] = defaultdict(list)
    for path, default in ((files.simple, ImageType.SIMPLE), (files.complex, ImageType.COMPLEX)):
        shown = display_path(path, Path(root))
        for row in _test_rows(path, shown, need_split, stats):
            pid = str(row["PRODUCT_ID"])
            image = image_from_row(row, default, shown, pid, stats)
            if image is not None:
                grouped[pid].append((image, shown))
    out = []
    for pid, images in grouped.items():
        records = [im for im, _ in images]
        product = build_product(pid, records, split="test", file=images[0][1], stats=stats)
        if product is not None:
            out.append(product)
    return out


@dataclass(frozen=True)
class DistractorTable:
    """The distractors of a metadata file, in file order, as compact columns."""

    labels: np.ndarray  # (n,) int64 or str: the metadata frame's index labels (or positions)
    urls: pa.Array  # (n,) string
    categories: np.ndarray  # (n,) int64 LRVSF_CATEGORIES index, -1 when unknown or missing

    def __len__(self) -> int:
        return len(self.urls)

    def take(self, rows: np.ndarray) -> DistractorTable:
        """The rows ``rows`` (positions), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return DistractorTable(
            self.labels[rows], self.urls.take(pa.array(rows)), self.categories[rows]
        )


def _category_codes(column: pa.Array, shown: str, stats: ReadStats) -> np.ndarray:
    """CATEGORY values as ``LRVSF_CATEGORIES`` indices; unknown names give -1 (a warning)."""
    encoded = plain_array(column).cast(pa.string()).dictionary_encode()
    lookup = []
    for value in encoded.dictionary.to_pylist():
        try:
            name = canonical_category(value)
        except ValueError as exc:
            stats.warn("unknown-category", shown, None, f"{exc}; kept without category")
            name = None
        lookup.append(-1 if name is None else category_index(name))
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    table = np.asarray([*lookup, -1], dtype=np.int64)  # index -1 (null) maps to the last
    return table[codes]


def read_distractor_table(
    path: Path, shown: str | None = None, stats: ReadStats | None = None
) -> DistractorTable:
    """Read the ``URL``, ``CATEGORY`` and row labels of a distractor metadata file."""
    shown = shown or path.name
    stats = stats if stats is not None else ReadStats()
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    urls = plain_array(read_column(path, require_column(names, ["URL"], "URL", shown)))
    if urls.type != pa.string():
        raise DataFileError(f"{shown}: URL column has type {urls.type}; expected strings")
    index_col, start, step = pandas_index(pf)
    positions = start + step * np.arange(len(urls), dtype=np.int64)
    labels: np.ndarray = positions
    if index_col is not None:
        labels = label_values(read_column(path, index_col))
        if labels.dtype.kind == "U" and (labels == "").any():  # missing labels: positions
            labels = np.where(labels == "", positions.astype(str), labels)
    cat_col = find_column(names, ["CATEGORY"])
    if cat_col is None:
        cats = np.full(len(urls), -1, dtype=np.int64)
    else:
        cats = _category_codes(read_column(path, cat_col), shown, stats)
    return DistractorTable(labels, urls, cats)
