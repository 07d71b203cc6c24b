"""A user's own catalog: a folder of images, or a parquet/CSV table of items.

Folder: every image file under the root, in sorted order; the id is the path relative to the
root without its suffix (``bags/tote_12``); the category is the nearest parent folder whose
name is a known category (``Lower_Body`` and ``lower-body`` count), else ``None``. Images
are read lazily from their paths.

Table (``.parquet`` or ``.csv``): one row per item with an image column (bytes or a path
relative to the table's folder) and optional id, category and title columns, found under
common names, case-insensitively. Items become :class:`Product` records with one SIMPLE image,
no complex image, the title as caption, and split ``"catalog"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from referred.data.assemble import build_product, canonical_category, clean_meta, is_missing
from referred.data.base import Dataset
from referred.data.files import (
    display_path,
    find_column,
    iter_parquet_batches,
)
from referred.data.records import DataFileError, ImageRecord, ImageType, Product, ReadStats

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
TABLE_SUFFIXES = frozenset({".parquet", ".csv"})

ID_ALIASES = ("id", "product_id", "item_id", "sku", "key", "uid")
IMAGE_BYTES_ALIASES = ("image_bytes", "image", "jpg", "jpeg", "bytes", "img", "image_data")
IMAGE_PATH_ALIASES = ("image_path", "path", "file", "filename", "file_path", "image_file")
CATEGORY_ALIASES = ("category", "categories", "product_category", "cat")
TITLE_ALIASES = ("title", "name", "caption", "description", "text", "product_name")


def category_from_path(relative: Path) -> str | None:
    """The nearest parent folder of ``relative`` that names a known category, else ``None``."""
    for part in reversed(relative.parent.parts):
        try:
            return canonical_category(part)
        except ValueError:
            continue
    return None


def has_images(root: Path) -> bool:
    """Whether ``root`` holds at least one image file (searched recursively)."""
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*") if p.is_file())


class CatalogDataset(Dataset):
    """Reader of a catalog folder or table (split ``"catalog"``)."""

    layout = "catalog"

    @property
    def splits(self) -> tuple[str, ...]:
        return ("catalog",)

    def products(
        self, split: str = "catalog", *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Product]:
        self._split(split, self.splits)
        stats = stats if stats is not None else ReadStats()
        if self.root.is_dir():
            yield from self._folder(stats, verify)
        else:
            yield from self._table(stats, verify)

    def _folder(self, stats: ReadStats, verify: bool) -> Iterator[Product]:
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in paths:
            if not path.is_file():
                continue
            relative = path.relative_to(self.root)
            pid = relative.with_suffix("").as_posix()
            image = ImageRecord(relative.as_posix(), ImageType.SIMPLE, None, path, {})
            product = build_product(
                pid,
                [image],
                split="catalog",
                file=relative.as_posix(),
                stats=stats,
                verify=verify,
                require_complex=False,
                category=category_from_path(relative),
            )
            if product is not None:
                yield product

    def _table(self, stats: ReadStats, verify: bool) -> Iterator[Product]:
        shown = display_path(self.root, self.root.parent)
        batches = _table_batches(self.root)
        first = next(batches, None)
        if first is None:
            return
        columns = _table_columns(first.schema.names, shown)
        position = 0
        seen: set[str] = set()
        for batch in _chain(first, batches):
            for row in batch.to_pylist():
                product = self._row(clean_meta(row), position, columns, shown, stats, verify)
                position += 1
                if product is None:
                    continue
                if product.product_id in seen:
                    stats.warn("duplicate", shown, product.product_id, "id seen before; kept")
                seen.add(product.product_id)
                yield product

    def _row(
        self,
        row: dict[str, Any],
        position: int,
        columns: dict[str, str | None],
        shown: str,
        stats: ReadStats,
        verify: bool,
    ) -> Product | None:
        pid = row.get(columns["id"]) if columns["id"] else None
        pid = str(position) if is_missing(pid) else str(pid)
        image = self._image(row, columns, pid, shown, stats)
        if image is None:
            return None
        raw_category = row.get(columns["category"]) if columns["category"] else None
        try:
            category = canonical_category(raw_category)
        except ValueError as exc:
            stats.warn("unknown-category", shown, pid, f"{exc}; kept without category")
            category = None
        title = row.get(columns["title"]) if columns["title"] else None
        return build_product(
            pid,
            [image],
            split="catalog",
            file=shown,
            stats=stats,
            verify=verify,
            require_complex=False,
            category=category,
            extra_captions=() if is_missing(title) else (str(title),),
        )

    def _image(
        self,
        row: dict[str, Any],
        columns: dict[str, str | None],
        pid: str,
        shown: str,
        stats: ReadStats,
    ) -> ImageRecord | None:
        meta = {k: v for k, v in row.items() if not isinstance(v, (bytes, dict))}
        if columns["bytes"]:
            cell = row.get(columns["bytes"])
            cell = cell.get("bytes") if isinstance(cell, dict) else cell
            if isinstance(cell, (bytes, bytearray)):
                return ImageRecord(None, ImageType.SIMPLE, bytes(cell), None, meta)
            if isinstance(cell, str) and cell.strip() and not columns["path"]:
                path = self.root.parent / cell
                return ImageRecord(str(cell), ImageType.SIMPLE, None, path, meta)
        if columns["path"]:
            cell = row.get(columns["path"])
            if not is_missing(cell):
                path = self.root.parent / str(cell)
                return ImageRecord(str(cell), ImageType.SIMPLE, None, path, meta)
        stats.error("missing-image", shown, pid, "row has no image bytes or path")
        return None


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _table_batches(path: Path) -> Iterator[pa.RecordBatch]:
    if path.suffix.lower() == ".parquet":
        yield from iter_parquet_batches(path, batch_size=1024)
        return
    if not path.is_file():
        raise DataFileError(f"missing file: {path}")
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20))
        yield from reader
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: not a readable CSV file ({exc})") from exc


def _table_columns(names: list[str], shown: str) -> dict[str, str | None]:
    columns = {
        "id": find_column(names, ID_ALIASES),
        "bytes": find_column(names, IMAGE_BYTES_ALIASES),
        "path": find_column(names, IMAGE_PATH_ALIASES),
        "category": find_column(names, CATEGORY_ALIASES),
        "title": find_column(names, TITLE_ALIASES),
    }
    if columns["bytes"] is None and columns["path"] is None:
        accepted = ", ".join(IMAGE_BYTES_ALIASES + IMAGE_PATH_ALIASES)
        raise DataFileError(
            f"{shown}: no image column; accepted names (case-insensitive): {accepted}; "
            f"columns found: {', '.join(names) or 'none'}"
        )
    return columns
