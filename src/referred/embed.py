"""Batch embedding of image collections into a parquet file of (id, vector): resumable.

Output: ``OUT``, a parquet file with columns ``id`` (string) and ``vector`` (fixed-size list
of float32, L2-normalised), written by the one resumable cache (:mod:`referred.catalog.cache`,
whose rules apply): finished batches go to ``OUT.parts/part-NNNNN.parquet``, a re-run skips
every id already in ``OUT`` or a part, and the final merge replaces ``OUT`` atomically. ``OUT``
records the model's fingerprint and the condition; a re-run with another model or condition
is refused. Unreadable images are skipped, counted and listed (also in
``OUT.failures.tsv``), never fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from referred.catalog.cache import EmbedReport, OutputCache, write_failures
from referred.imageio import ImageDecodeError, ImageSource
from referred.preprocess import preprocess_image

Item = tuple[str, ImageSource]


def catalog_items(source: str | os.PathLike) -> tuple[Iterator[Item], int | None]:
    """``(id, image)`` pairs of a catalog folder or table, and their count when cheap to know.

    A folder yields every image file (id = its path relative to the folder, without suffix);
    a parquet/CSV table yields its id and image (bytes or path) columns, as
    :class:`referred.data.catalog.CatalogDataset` reads them.
    """
    from referred.data.catalog import CatalogDataset

    root = Path(source)
    if not root.exists():
        raise FileNotFoundError(f"no such folder or catalog file: {root}")
    ds = CatalogDataset(root)

    def items() -> Iterator[Item]:
        for product in ds.products("catalog"):
            image = product.simple[0]
            yield product.product_id, image.data if image.data is not None else image.path

    total = None
    if root.suffix.lower() == ".parquet":
        total = pq.ParquetFile(root).metadata.num_rows
    return items(), total


def embed_record(model: Any, cond: Any) -> dict[str, Any]:
    """What made a catalog's embeddings (the cache's record): the weights' fingerprint, the
    architecture and the condition (:class:`referred.query.Condition`). The local and the Ray
    job write the same record: their vectors are the same to 1e-5."""
    from referred.search.provenance import fingerprint

    return {
        "model": fingerprint(model),
        "architecture": model.config.name,
        "condition": cond.kind if cond.value is None else f"{cond.kind}: {cond.value}",
    }


def failures_path(out: Path) -> Path:
    return out.with_name(out.name + ".failures.tsv")


def decode_batch(
    batch: Iterable[Item], cfg: Any
) -> tuple[list[str], list[np.ndarray], list[tuple[str, str]]]:
    """Preprocess images for the model: the ids and ``(3, R, R)`` arrays of those that
    decode, and ``(id, reason)`` of those that do not (skipped, never fatal)."""
    ids, arrays, failures = [], [], []
    for item_id, src in batch:
        try:
            arrays.append(preprocess_image(src, cfg))
            ids.append(item_id)
        except (ImageDecodeError, OSError) as exc:
            failures.append((item_id, str(exc) or type(exc).__name__))
    return ids, arrays, failures


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def embed_items(
    model: Any,
    items: Iterable[Item],
    out: str | os.PathLike,
    condition: Any = None,
    batch_size: int = 32,
    rows_per_part: int = 4096,
    progress: bool = True,
    total: int | None = None,
    fast: bool = True,
) -> EmbedReport:
    """Embed ``(id, image)`` pairs with ``model`` into the parquet file ``out``.

    ``condition``: None (unconditioned, as catalog products are), a category name or a text,
    applied to every image, with :mod:`referred.query`'s rules. Decoding of the next batch
    overlaps the model's forward. ``fast``: on the CPU, run the fast forward (same vectors to
    ~1e-6).
    """
    from referred.query import QueryEncoder

    encoder = QueryEncoder(model, fast=fast, batch_size=batch_size)
    cond = encoder.conditions([condition], 1)[0]  # checked before any image is read
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = EmbedReport(output=out)
    cache = OutputCache(out, embed_record(model, cond), model.config.output_dim, rows_per_part)
    bar = progress_bar(progress, total)
    cfg = model.config.preprocess

    def forward(decoded: tuple[list[str], list[np.ndarray], list[tuple[str, str]]]) -> None:
        ids, arrays, failures = decoded
        report.failures.extend(failures)
        if arrays:
            pixels = torch.from_numpy(np.stack(arrays))  # (b, 3, R, R)
            cache.add(ids, encoder.forward(pixels, [cond] * len(ids)).numpy())
            report.embedded += len(ids)
        if bar is not None:
            bar.update(len(ids) + len(failures))

    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        future = None
        for batch in _chunks(cache.pending(items, report), batch_size):
            nxt = pool.submit(decode_batch, batch, cfg)  # decode batch i+1 while batch i runs
            if future is not None:
                forward(future.result())
            future = nxt
        if future is not None:
            forward(future.result())
    if bar is not None:
        bar.close()
    cache.finish()
    write_failures(failures_path(out), report.failures)
    return report


def progress_bar(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="embed", dynamic_ncols=True)
