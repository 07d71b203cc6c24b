"""The Zenodo test set (DOI 10.5281/zenodo.11189942): queries, targets and distractors as bytes.

``products.parquet`` has one row per test product: ``SIMPLE_IMG`` (the target's bytes),
``COMPLEX_IMG`` (the query's bytes), ``CATEGORY`` and ``blip2_caption1``;
``distractors/*.parquet`` have a ``jpg`` bytes column. Both are streamed in record batches.
Product ids are the ``PRODUCT_ID`` column when there is one, else the row position.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from referred.data.assemble import build_distractor, build_product, clean_meta, is_missing
from referred.data.base import Dataset
from referred.data.files import (
    display_path,
    find_column,
    iter_parquet_batches,
    natural_shard_order,
    open_parquet,
    pandas_index,
    require_column,
)
from referred.data.records import Distractor, ImageRecord, ImageType, Product, ReadStats
from referred.data.training_layout import JPG_ALIASES, URL_ALIASES, as_bytes

PRODUCTS_FILE = "products.parquet"
DISTRACTORS_DIR = "distractors"
ID_ALIASES = ("PRODUCT_ID", "id")


def is_zenodo_products(path: Path) -> bool:
    """Whether ``path`` is a parquet file with ``SIMPLE_IMG`` and ``COMPLEX_IMG`` columns."""
    try:
        names = open_parquet(path).schema_arrow.names
    except ValueError:
        return False
    return "SIMPLE_IMG" in names and "COMPLEX_IMG" in names


class ZenodoDataset(Dataset):
    """Reader of the Zenodo test set (split ``"test"`` only)."""

    layout = "zenodo"

    @property
    def splits(self) -> tuple[str, ...]:
        return ("test",)

    @property
    def distractor_splits(self) -> tuple[str, ...]:
        return ("test",) if self.distractor_files() else ()

    def distractor_files(self) -> list[Path]:
        """``distractors/*.parquet`` in natural order."""
        return natural_shard_order((self.root / DISTRACTORS_DIR).glob("*.parquet"))

    def products(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Product]:
        self._split(split, self.splits)
        stats = stats if stats is not None else ReadStats()
        path = self.root / PRODUCTS_FILE
        shown = display_path(path, self.root)
        names = open_parquet(path).schema_arrow.names
        for required in ("SIMPLE_IMG", "COMPLEX_IMG"):
            require_column(names, [required], required, shown)
        id_col = find_column(names, ID_ALIASES)
        position = 0
        for batch in iter_parquet_batches(path, batch_size=256):
            for row in batch.to_pylist():
                pid = str(row[id_col]) if id_col and not is_missing(row[id_col]) else str(position)
                position += 1
                product = self._product(pid, clean_meta(row), shown, stats, verify)
                if product is not None:
                    yield product

    @staticmethod
    def _product(pid: str, row: dict, shown: str, stats: ReadStats, verify: bool) -> Product | None:
        simple_bytes = as_bytes(row.pop("SIMPLE_IMG"))
        complex_bytes = as_bytes(row.pop("COMPLEX_IMG"))
        images = []
        for data, kind in ((simple_bytes, ImageType.SIMPLE), (complex_bytes, ImageType.COMPLEX)):
            if data is None:
                stats.error("missing-image", shown, pid, f"no {kind.value} image bytes")
            else:
                url = f"{shown}#{pid}/{kind.value.lower()}"
                images.append(ImageRecord(url, kind, data, None, row))
        return build_product(pid, images, split="test", file=shown, stats=stats, verify=verify)

    def distractors(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Distractor]:
        self._split(split, self.distractor_splits, "distractor split")
        stats = stats if stats is not None else ReadStats()
        for path in self.distractor_files():
            shown = display_path(path, self.root)
            yield from _file_distractors(path, shown, stats, verify)


def _file_distractors(
    path: Path, shown: str, stats: ReadStats, verify: bool
) -> Iterator[Distractor]:
    pf = open_parquet(path)
    names = pf.schema_arrow.names
    jpg_col = require_column(names, JPG_ALIASES, "image bytes", shown)
    id_col = pandas_index(pf)[0] or find_column(names, (*URL_ALIASES, "id"))
    position = 0
    for batch in iter_parquet_batches(path, batch_size=512):
        for row in batch.to_pylist():
            did = row[id_col] if id_col else None
            did = f"{path.stem}:{position}" if is_missing(did) else str(did)
            position += 1
            data = as_bytes(row.pop(jpg_col))
            if data is None:
                stats.error("missing-image", shown, did, "row without image bytes skipped")
                continue
            meta = clean_meta(row)
            url = meta.get("url") or meta.get("URL")
            image = ImageRecord(url, ImageType.SIMPLE, data, None, meta)
            found = build_distractor(
                did, image, split="test", file=shown, stats=stats, verify=verify
            )
            if found is not None:
                yield found
