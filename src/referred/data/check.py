"""``referred data check``: read a dataset end to end and list what is wrong with it.

Every split is streamed through its reader with image decoding on, so the problems listed are
exactly what training or evaluation would skip. On top of that, the training layout's root
metadata is compared with its shards, and ``bootstrap_IDs.pkl`` is loaded safely.

Severity: an **error** is an item that readers skip (corrupt or missing image, product without
a SIMPLE or a COMPLEX image, unknown category, bad metadata, truncated tar), a file that
cannot be read, or files that disagree; a **warning** is kept data that looks odd (ignored
tar members, distractors without a known category, duplicate catalog ids, unknown ids in
bootstrap subsets, comparisons that could not run). The data is *usable* when there is no
error and at least one product.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from referred.data.assemble import is_missing
from referred.data.base import Dataset
from referred.data.bootstrap import load_bootstrap_ids
from referred.data.detect import open_dataset
from referred.data.files import display_path, iter_parquet_batches, open_parquet, url_key
from referred.data.records import DataFileError, ReadStats
from referred.data.training_layout import (
    BOOTSTRAP_FILE,
    ROOT_COMPLEX,
    ROOT_SIMPLE,
    TrainingLayoutDataset,
)


@dataclass
class CheckReport:
    """The outcome of :func:`check_dataset`: counts per split and every problem found."""

    root: Path
    layout: str
    stats: ReadStats
    products: dict[str, int] = field(default_factory=dict)
    distractors: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the data is usable: no error and at least one product."""
        return self.stats.errors == 0 and sum(self.products.values()) > 0

    def summary_lines(self) -> list[str]:
        """Counts, problem kinds and the verdict, one fact a line."""
        prods = ", ".join(f"{s} {n}" for s, n in self.products.items()) or "none"
        dists = ", ".join(f"{s} {n}" for s, n in self.distractors.items()) or "none"
        lines = [
            f"layout: {self.layout} ({self.root})",
            f"products read: {prods}",
            f"distractors read: {dists}",
        ]
        if self.stats.problem_counts:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.stats.problem_counts.items()))
            lines.append(f"problems by kind: {kinds}")
        verdict = "usable" if self.ok else "NOT usable as is"
        if not sum(self.products.values()):
            verdict += " (no product could be read)"
        lines.append(f"{self.stats.errors} errors, {self.stats.warnings} warnings: {verdict}")
        return lines


def _pair_key(pid: str, url: str | None) -> int:
    return url_key(f"{pid}\x00{url}")


def _read_products(
    ds: Dataset, split: str, stats: ReadStats, decode: bool
) -> tuple[int, list[int], dict[str, str | None]]:
    """Stream one split; returns (count, (pid, url) keys of its images, pid → category)."""
    count, keys, categories = 0, [], {}
    try:
        for product in ds.products(split, stats=stats, verify=decode):
            count += 1
            keys.extend(_pair_key(product.product_id, im.url) for im in product.images)
            categories[product.product_id] = product.category
    except DataFileError as exc:
        stats.error("unreadable-file", str(ds.root), None, f"{split} split: {exc}")
    return count, keys, categories


def _compare_metadata(
    ds: TrainingLayoutDataset,
    split: str,
    keys: Iterable[int],
    categories: dict[str, str | None],
    stats: ReadStats,
) -> None:
    """Report root-metadata rows of ``split`` absent from its shards, and vice versa."""
    prefixes = {"train": ("train",), "valid": ("val",)}[split]
    shard_keys = np.unique(np.fromiter(keys, dtype=np.uint64))
    seen = np.zeros(len(shard_keys), dtype=bool)
    reported = {p.item for p in stats.problems if p.item is not None}
    for name in (ROOT_SIMPLE, ROOT_COMPLEX):
        path = ds.root / name
        if not path.is_file():
            stats.warn("missing-file", name, None, f"root metadata absent; {split} not compared")
            return
        wanted = ("SPLIT", "PRODUCT_ID", "URL", "TYPE", "CATEGORY")
        columns = [c for c in wanted if c in open_parquet(path).schema_arrow.names]
        if "SPLIT" not in columns or "PRODUCT_ID" not in columns:
            stats.warn("not-compared", name, None, "no SPLIT/PRODUCT_ID; shards not compared")
            return
        for batch in iter_parquet_batches(path, columns=columns, batch_size=65536):
            for row in batch.to_pylist():
                if is_missing(row.get("SPLIT")) or not str(row["SPLIT"]).startswith(prefixes):
                    continue
                pid, url = str(row.get("PRODUCT_ID")), row.get("URL")
                key = np.uint64(_pair_key(pid, url))
                pos = np.searchsorted(shard_keys, key)
                if pos < len(shard_keys) and shard_keys[pos] == key:
                    seen[pos] = True
                    _compare_category(row, categories.get(pid), name, pid, stats)
                elif pid not in reported:
                    stats.error("metadata-mismatch", name, pid, f"{url} is not in the shards")
    extra = int((~seen).sum())
    if extra:
        stats.error(
            "metadata-mismatch",
            f"{split} shards",
            None,
            f"{extra} images in the shards have no row in the root metadata",
        )


def _compare_category(
    row: dict, category: str | None, file: str, pid: str, stats: ReadStats
) -> None:
    raw = row.get("CATEGORY")
    if row.get("TYPE") != "SIMPLE" or is_missing(raw) or category is None:
        return
    if str(raw).strip().casefold() != category.casefold():
        stats.error("metadata-mismatch", file, pid, f"CATEGORY {raw!r}, shards say {category!r}")


def _check_bootstrap(ds: Dataset, test_ids: set[str], stats: ReadStats) -> None:
    path = ds.root / BOOTSTRAP_FILE
    if not path.is_file():
        return
    try:
        subsets = load_bootstrap_ids(path)
    except DataFileError as exc:
        stats.error("unreadable-file", BOOTSTRAP_FILE, None, str(exc))
        return
    if test_ids and "test_subsets" in subsets:
        ids = {str(v) for arr in subsets["test_subsets"] for v in arr.tolist()}
        unknown = len(ids - test_ids)
        if unknown:
            stats.warn(
                "bootstrap-ids",
                BOOTSTRAP_FILE,
                None,
                f"{unknown} product ids of test_subsets are not test products",
            )


def check_dataset(
    root: Path, *, layout: str | None = None, decode: bool = True, max_problems: int = 10_000
) -> CheckReport:
    """Read every split of the dataset at ``root`` and collect its problems.

    ``decode=False`` skips image decoding (structure and metadata only; much faster).
    Raises only when ``root`` is not a dataset at all (``FileNotFoundError``/``ValueError``).
    """
    ds = open_dataset(Path(root), layout)
    stats = ReadStats(max_problems=max_problems)
    report = CheckReport(Path(root), ds.layout, stats)
    test_ids: set[str] = set()
    for split in ds.splits:
        count, keys, categories = _read_products(ds, split, stats, decode)
        report.products[split] = count
        if split == "test":
            test_ids = set(categories)
        if isinstance(ds, TrainingLayoutDataset) and split in ("train", "valid"):
            _compare_metadata(ds, split, keys, categories, stats)
    for split in ds.distractor_splits:
        try:
            n = sum(1 for _ in ds.distractors(split, stats=stats, verify=decode))
        except DataFileError as exc:
            stats.error("unreadable-file", display_path(ds.root, ds.root), None, str(exc))
            n = 0
        report.distractors[split] = n
    _check_bootstrap(ds, test_ids, stats)
    return report
