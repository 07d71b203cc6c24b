"""The training-code layout: webdataset tars for train/valid, parquet files for test.

::

    ROOT/TRAIN/*.tar                  {PRODUCT_ID}.{i}.jpg + {PRODUCT_ID}.json ({i: metadata})
    ROOT/VALID/prods.tar              same, validation products
    ROOT/VALID/dist_{k}.tar           {ID}.jpg + {ID}.json (flat metadata)
    ROOT/TEST/prods.parquet           index url, column jpg (bytes)
    ROOT/TEST/dist_{k}.parquet        index url, column jpg (bytes)
    ROOT/products_simple_metadata.parquet, products_complex_metadata.parquet,
    ROOT/distractors_test_metadata.parquet, bootstrap_IDs.pkl

Tars are streamed one sample at a time. Test products are reassembled by joining the image
bytes of ``TEST/prods.parquet`` with the root metadata; the join keeps the test rows of the
metadata in memory (a few thousand) and each product only until its last image has streamed by.
Test distractors get their category and row label from ``distractors_test_metadata.parquet``
through compact URL keys (20 bytes a distractor).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from referred.data.assemble import build_distractor, build_product, is_missing
from referred.data.base import Dataset
from referred.data.files import (
    display_path,
    find_column,
    iter_parquet_batches,
    label_values,
    natural_shard_order,
    open_parquet,
    pandas_index,
    plain_array,
    read_column,
    require_column,
    sorted_lookup,
    url_key,
    url_keys,
)
from referred.data.hf import image_from_row
from referred.data.records import (
    DataFileError,
    Distractor,
    ImageRecord,
    ImageType,
    Product,
    ReadStats,
)
from referred.data.tario import TarSample, iter_tar_samples

TRAIN_DIR, VALID_DIR, TEST_DIR = "TRAIN", "VALID", "TEST"
PRODS_TAR, PRODS_PARQUET = "prods.tar", "prods.parquet"
ROOT_SIMPLE = "products_simple_metadata.parquet"
ROOT_COMPLEX = "products_complex_metadata.parquet"
ROOT_DISTRACTORS = "distractors_test_metadata.parquet"
BOOTSTRAP_FILE = "bootstrap_IDs.pkl"
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
URL_ALIASES = ("url", "URL", "key")
JPG_ALIASES = ("jpg", "jpeg", "image", "png", "webp")


def as_bytes(value: Any) -> bytes | None:
    """Image bytes from a parquet cell: raw bytes, or a ``{"bytes": ...}`` struct (HF datasets)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None


def _parse_json(sample: TarSample, shown: str, stats: ReadStats) -> dict[str, Any] | None:
    raw = sample.files.get("json")
    if raw is None:
        stats.error("bad-metadata", shown, sample.key, "sample has no .json metadata; skipped")
        return None
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        stats.error("bad-metadata", shown, sample.key, f"unreadable {sample.key}.json ({exc})")
        return None
    if not isinstance(meta, dict):
        stats.error("bad-metadata", shown, sample.key, f"{sample.key}.json is not an object")
        return None
    return meta


def product_from_sample(
    sample: TarSample, split: str, shown: str, stats: ReadStats, verify: bool
) -> Product | None:
    """A product from a per-product sample (``{i}.jpg`` members + a json ``{i: metadata}``)."""
    meta = _parse_json(sample, shown, stats)
    if meta is None:
        return None
    images: list[ImageRecord] = []
    used = {"json"}
    for index in sorted(meta, key=lambda k: (len(k), k)):
        row = meta[index]
        if not isinstance(row, dict):
            stats.error(
                "bad-metadata", shown, sample.key, f"metadata of image {index} not an object"
            )
            continue
        ext = next((f"{index}.{e}" for e in IMAGE_EXTS if f"{index}.{e}" in sample.files), None)
        if ext is None:
            stats.error("missing-image", shown, sample.key, f"image {index} listed in json, absent")
            continue
        used.add(ext)
        image = image_from_row(dict(row), None, shown, sample.key, stats)
        if image is not None:
            images.append(ImageRecord(image.url, image.type, sample.files[ext], None, image.meta))
    for ext in sorted(set(sample.files) - used):
        stats.warn("ignored-member", shown, sample.key, f"{sample.key}.{ext} not in the json")
    return build_product(sample.key, images, split=split, file=shown, stats=stats, verify=verify)


class TrainingLayoutDataset(Dataset):
    """Reader of the training-code layout (see the module docstring)."""

    layout = "training"

    def train_shards(self) -> list[Path]:
        """``TRAIN/*.tar`` in natural order."""
        return natural_shard_order((self.root / TRAIN_DIR).glob("*.tar"))

    def distractor_shards(self, split: str) -> list[Path]:
        """``VALID/dist_*.tar`` or ``TEST/dist_*.parquet`` in natural order."""
        if split == "valid":
            return natural_shard_order((self.root / VALID_DIR).glob("dist_*.tar"))
        return natural_shard_order((self.root / TEST_DIR).glob("dist_*.parquet"))

    @property
    def splits(self) -> tuple[str, ...]:
        found = {
            "train": bool(self.train_shards()),
            "valid": (self.root / VALID_DIR / PRODS_TAR).is_file(),
            "test": (self.root / TEST_DIR / PRODS_PARQUET).is_file(),
        }
        return tuple(s for s, ok in found.items() if ok)

    @property
    def distractor_splits(self) -> tuple[str, ...]:
        return tuple(s for s in ("valid", "test") if self.distractor_shards(s))

    def _shown(self, path: Path) -> str:
        return display_path(path, self.root)

    def products(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Product]:
        split = self._split(split, self.splits)
        stats = stats if stats is not None else ReadStats()
        if split == "test":
            yield from self._test_products(stats, verify)
            return
        shards = self.train_shards() if split == "train" else [self.root / VALID_DIR / PRODS_TAR]
        for shard in shards:
            shown = self._shown(shard)
            for sample in iter_tar_samples(shard, stats, shown):
                product = product_from_sample(sample, split, shown, stats, verify)
                if product is not None:
                    yield product

    def _test_metadata(self, stats: ReadStats) -> dict[str, list[dict[str, Any]]]:
        """Root metadata rows of the test split, by URL (each with its default TYPE)."""
        rows_by_url: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for name, default in ((ROOT_SIMPLE, ImageType.SIMPLE), (ROOT_COMPLEX, ImageType.COMPLEX)):
            path = self.root / name
            if not path.is_file():
                raise DataFileError(f"missing file: {path} (needed to reassemble test products)")
            for batch in iter_parquet_batches(path):
                for row in batch.to_pylist():
                    split = row.get("SPLIT")
                    if not is_missing(split) and str(split).startswith("test"):
                        if is_missing(row.get("TYPE")):
                            row["TYPE"] = default.value
                        rows_by_url[str(row.get("URL"))].append(row)
        return rows_by_url

    def _test_products(self, stats: ReadStats, verify: bool) -> Iterator[Product]:
        rows_by_url = self._test_metadata(stats)
        remaining: dict[str, set[str]] = defaultdict(set)
        for url, rows in rows_by_url.items():
            for row in rows:
                remaining[str(row.get("PRODUCT_ID"))].add(url)
        pending: dict[str, list[ImageRecord]] = defaultdict(list)
        path = self.root / TEST_DIR / PRODS_PARQUET
        shown = self._shown(path)

        def finish(pid: str) -> Product | None:
            return build_product(
                pid, pending.pop(pid, []), split="test", file=shown, stats=stats, verify=verify
            )

        for url, data in iter_url_bytes(path, shown, stats):
            rows = rows_by_url.get(url)
            if not rows:
                stats.error("orphan-image", shown, url, "no test row in the root metadata")
                continue
            for row in rows:
                pid = str(row.get("PRODUCT_ID"))
                image = image_from_row(row, ImageType.SIMPLE, shown, pid, stats)
                if image is None or url not in remaining.get(pid, ()):
                    continue
                pending[pid].append(ImageRecord(url, image.type, data, None, image.meta))
                remaining[pid].discard(url)
                if not remaining[pid]:
                    del remaining[pid]
                    product = finish(pid)
                    if product is not None:
                        yield product
        for pid in sorted(remaining):
            for url in sorted(remaining[pid]):
                stats.error("missing-image", shown, pid, f"{url} is in the metadata, not here")
            product = finish(pid)
            if product is not None:
                yield product

    def distractors(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Distractor]:
        split = self._split(split, self.distractor_splits, "distractor split")
        stats = stats if stats is not None else ReadStats()
        if split == "valid":
            yield from self._valid_distractors(stats, verify)
            return
        lookup = DistractorLookup.from_metadata(self.root / ROOT_DISTRACTORS, stats)
        for shard in self.distractor_shards("test"):
            shown = self._shown(shard)
            for url, data in iter_url_bytes(shard, shown, stats):
                label, category = lookup.get(url)
                image = ImageRecord(url, ImageType.SIMPLE, data, None, {"URL": url})
                found = build_distractor(
                    label or url,
                    image,
                    split="test",
                    file=shown,
                    stats=stats,
                    verify=verify,
                    category=category,
                )
                if found is not None:
                    yield found

    def _valid_distractors(self, stats: ReadStats, verify: bool) -> Iterator[Distractor]:
        for shard in self.distractor_shards("valid"):
            shown = self._shown(shard)
            for sample in iter_tar_samples(shard, stats, shown):
                meta = _parse_json(sample, shown, stats)
                if meta is None:
                    continue
                ext = next((e for e in IMAGE_EXTS if e in sample.files), None)
                if ext is None:
                    stats.error("missing-image", shown, sample.key, "distractor without image")
                    continue
                url = meta.get("URL")
                image = ImageRecord(
                    None if is_missing(url) else str(url),
                    ImageType.SIMPLE,
                    sample.files[ext],
                    None,
                    meta,
                )
                found = build_distractor(
                    sample.key, image, split="valid", file=shown, stats=stats, verify=verify
                )
                if found is not None:
                    yield found


def iter_url_bytes(path: Path, shown: str, stats: ReadStats) -> Iterator[tuple[str, bytes | None]]:
    """Stream ``(url, image bytes)`` from a test parquet; rows without bytes are reported."""
    names = open_parquet(path).schema_arrow.names
    url_col = require_column(names, URL_ALIASES, "url", shown)
    jpg_col = require_column(names, JPG_ALIASES, "image bytes", shown)
    for batch in iter_parquet_batches(path, columns=[url_col, jpg_col], batch_size=512):
        urls = batch.column(0).to_pylist()
        for url, cell in zip(urls, batch.column(1).to_pylist()):
            data = as_bytes(cell)
            if is_missing(url):
                stats.error("bad-metadata", shown, None, "row without url skipped")
            elif data is None:
                stats.error("missing-image", shown, url, "row without image bytes skipped")
            else:
                yield str(url), data


class DistractorLookup:
    """URL → (row label, raw CATEGORY) of a distractor metadata file, in compact arrays.

    Memory: 20 bytes per distractor plus the distinct category strings. An absent file gives
    a lookup that knows nothing (a warning is recorded).
    """

    def __init__(
        self, keys: np.ndarray, labels: np.ndarray, codes: np.ndarray, values: list[str | None]
    ) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.labels, self.codes = keys[order], labels[order], codes[order]
        self.values = values

    @classmethod
    def from_metadata(cls, path: Path, stats: ReadStats) -> DistractorLookup:
        """Read ``URL``, ``CATEGORY`` and the row labels of ``path``."""
        empty = np.zeros(0, dtype=np.uint64)
        if not path.is_file():
            stats.warn("missing-file", path.name, None, "distractors will have no category")
            return cls(empty, np.zeros(0, np.int64), np.zeros(0, np.int32), [])
        pf = open_parquet(path)
        index_col, start, step = pandas_index(pf)
        names = pf.schema_arrow.names
        url_col = require_column(names, ["URL"], "URL", path.name)
        cat_col = find_column(names, ["CATEGORY"])
        urls = plain_array(read_column(path, url_col))
        keys = url_keys(str(u) for u in urls.to_pylist())
        positions = start + step * np.arange(len(urls), dtype=np.int64)
        labels: np.ndarray = positions
        if index_col is not None:
            labels = label_values(read_column(path, index_col))
            blank = labels == "" if labels.dtype.kind == "U" else np.zeros(len(labels), bool)
            if blank.any():  # a missing label: the row is known by its position
                labels = labels.astype(object)
                labels[blank] = positions[blank].astype(str)
        values: dict[str | None, int] = {None: 0}
        cats = plain_array(read_column(path, cat_col)).to_pylist() if cat_col else []
        codes = np.array([values.setdefault(c, len(values)) for c in cats], np.int32)
        if not cat_col:
            codes = np.zeros(len(urls), np.int32)
        return cls(keys, labels, codes, list(values))

    def get(self, url: str) -> tuple[str | None, str | None]:
        """``(label, category)`` of ``url``, ``(None, None)`` when unknown."""
        pos = sorted_lookup(self.keys, np.array([url_key(url)], dtype=np.uint64))[0]
        if pos < 0:
            return None, None
        return str(self.labels[pos]), self.values[int(self.codes[pos])]
