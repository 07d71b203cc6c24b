"""``build_catalog_index(dedup=...)``: leave near-duplicates out of a catalog index.

``dedup`` is either a cleaned list written by ``referred data dedup`` (``kept.txt``: only
those ids are indexed), or a :class:`referred.data.dedup.DedupConfig`: the build's own
vectors are searched (embedding method) and, for the phash method, the catalog's images are
hashed in one more streamed pass; the report goes to ``<work dir>/dedup/`` and the dropped
items are not indexed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from referred.data.dedup import DedupConfig, Items, find_duplicates, hash_items, read_id_list
from referred.data.dedup.report import summary, write_report


def apply_dedup(
    dedup: DedupConfig | str | os.PathLike,
    ids: list[str],
    vectors: np.ndarray,
    source: Path | None,
    report_dir: Path,
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """``(ids, vectors)`` without the near-duplicates, and what was done (for ``index.info``).

    vectors: (n, d) float32 unit rows, in the order of ``ids``.
    """
    if not isinstance(dedup, DedupConfig):
        wanted = set(read_id_list(dedup))
        keep = np.fromiter((i in wanted for i in ids), dtype=bool, count=len(ids))
        info = {"kept_list": str(Path(dedup).absolute()), "dropped": int((~keep).sum())}
        return (*_subset(ids, vectors, keep), info)
    items = Items(list(ids), np.zeros(len(ids), dtype=np.int8))
    items.vectors, items.has_vector = vectors, np.ones(len(ids), dtype=bool)
    if "phash" in dedup.methods:
        if source is None:
            raise ValueError(
                "dedup by perceptual hash needs the catalog's images (--images or --catalog); "
                "with --embeddings alone use the embedding method"
            )
        items.hashes, items.has_hash = _hashes(source, ids, items.failures)
    result = find_duplicates(items, dedup)
    write_report(result, report_dir)
    info = {**summary(result), "report": str(report_dir.absolute())}
    return (*_subset(ids, vectors, result.kept), info)


def _hashes(
    source: Path, ids: list[str], failures: list[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """pHashes of the catalog's images aligned with ``ids`` (``has_hash`` False where an id
    has no readable image)."""
    from referred.data.catalog import CatalogDataset

    def stream():
        for product in CatalogDataset(source).products("catalog"):
            image = product.simple[0]
            yield product.product_id, 0, image.data if image.data is not None else image.path

    got_ids, _, got = hash_items(stream(), failures)
    row = {item_id: k for k, item_id in enumerate(got_ids)}
    where = np.array([row.get(i, -1) for i in ids], dtype=np.int64)
    has = where >= 0
    hashes = np.zeros(len(ids), dtype=np.uint64)
    hashes[has] = got[where[has]]
    return hashes, has


def _subset(ids: list[str], vectors: np.ndarray, keep: np.ndarray) -> tuple[list[str], np.ndarray]:
    return [i for i, k in zip(ids, keep) if k], vectors[keep]
