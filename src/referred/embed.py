"""Batch embedding of image collections into a parquet file of (id, vector): resumable.

Output layout: ``OUT`` is a parquet file with columns ``id`` (string) and ``vector``
(fixed-size list of float32, L2-normalised). While a job runs, finished batches go to
``OUT.parts/part-NNNNN.parquet`` (each written atomically); a re-run skips every id already in
``OUT`` or a part, and the final merge replaces ``OUT`` atomically. Unreadable images are
skipped, counted and listed (also in ``OUT.failures.tsv``), never fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from referred.imageio import ImageDecodeError, ImageSource
from referred.preprocess import preprocess_image

Item = tuple[str, ImageSource]


@dataclass
class EmbedReport:
    """What a job did: rows embedded now, rows found done, and the images it skipped."""

    output: Path
    embedded: int = 0
    already_done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.embedded + self.already_done


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


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _table(ids: list[str], vectors: np.ndarray, meta: dict[str, str]) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32, copy=False).reshape(-1))
    vec = pa.FixedSizeListArray.from_arrays(flat, dim)
    schema_meta = {k.encode(): v.encode() for k, v in meta.items()}
    return pa.table({"id": pa.array(ids, pa.string()), "vector": vec}).replace_schema_metadata(
        schema_meta
    )


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """An embeddings parquet → (ids, float32 array (N, D))."""
    table = pq.read_table(path, columns=["id", "vector"])
    ids = table.column("id").to_pylist()
    vec = table.column("vector").combine_chunks()
    dim = vec.type.list_size
    values = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, values.reshape(-1, dim) if ids else np.empty((0, dim), np.float32)


def done_ids(out: Path) -> set[str]:
    done: set[str] = set()
    files = [out] if out.is_file() else []
    if _parts_dir(out).is_dir():
        files += sorted(_parts_dir(out).glob("part-*.parquet"))
    for f in files:
        done.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return done


def _decode(batch: list[Item], cfg: Any) -> tuple[list[str], list[np.ndarray], list[tuple]]:
    ids, arrays, failures = [], [], []
    for item_id, src in batch:
        try:
            arrays.append(preprocess_image(src, cfg))
            ids.append(item_id)
        except (ImageDecodeError, FileNotFoundError, OSError) as exc:
            failures.append((item_id, str(exc)))
    return ids, arrays, failures


def _batches(items: Iterable[Item], skip: set[str], size: int, report: EmbedReport) -> Iterator:
    batch: list[Item] = []
    seen: set[str] = set()
    for item_id, src in items:
        if item_id in skip:
            report.already_done += 1
            continue
        if item_id in seen:
            report.failures.append((item_id, "duplicate id in the input; kept the first"))
            continue
        seen.add(item_id)
        batch.append((item_id, src))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class PartWriter:
    """Buffers embedded rows and writes them as atomic part files; merges them at the end."""

    def __init__(self, out: Path, dim: int, meta: dict[str, str], rows_per_part: int) -> None:
        self.out, self.dim, self.meta, self.rows_per_part = out, dim, meta, rows_per_part
        self.parts = _parts_dir(out)
        self.parts.mkdir(exist_ok=True)
        self.n_part = len(list(self.parts.glob("part-*.parquet")))
        self.ids: list[str] = []
        self.vecs: list[np.ndarray] = []

    def add(self, ids: list[str], vecs: np.ndarray) -> None:
        self.ids.extend(ids)
        self.vecs.append(vecs)
        if len(self.ids) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            table = _table(self.ids, np.concatenate(self.vecs), self.meta)
            _write_atomic(table, self.parts / f"part-{self.n_part:05d}.parquet")
            self.n_part, self.ids, self.vecs = self.n_part + 1, [], []

    def finish(self) -> None:
        """Merge the previous output and all parts into ``out`` (atomically)."""
        self.flush()
        files = ([self.out] if self.out.is_file() else []) + sorted(
            self.parts.glob("part-*.parquet")
        )
        tables = [pq.read_table(f) for f in files]
        tables = tables or [_table([], np.empty((0, self.dim), np.float32), self.meta)]
        meta = tables[-1].schema.metadata
        merged = pa.concat_tables([t.replace_schema_metadata(meta) for t in tables])
        # A crash after the last merge but before the parts were removed leaves rows twice.
        _, first = np.unique(np.asarray(merged.column("id").to_pylist(), object), return_index=True)
        if len(first) < merged.num_rows:
            merged = merged.take(pa.array(np.sort(first)))
        _write_atomic(merged, self.out)
        for f in self.parts.glob("part-*.parquet"):
            f.unlink()
        self.parts.rmdir()


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
    meta = {"model": model.config.name, "condition": cond.value or ""}
    writer = PartWriter(out, model.config.output_dim, meta, rows_per_part)
    bar = progress_bar(progress, total)
    cfg = model.config.preprocess

    def forward(decoded: tuple[list[str], list[np.ndarray], list[tuple[str, str]]]) -> None:
        ids, arrays, failures = decoded
        report.failures.extend(failures)
        if arrays:
            pixels = torch.from_numpy(np.stack(arrays))  # (b, 3, R, R)
            writer.add(ids, encoder.forward(pixels, [cond] * len(ids)).numpy())
            report.embedded += len(ids)
        if bar is not None:
            bar.update(len(ids) + len(failures))

    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        future = None
        for batch in _batches(items, done_ids(out), batch_size, report):
            nxt = pool.submit(_decode, batch, cfg)  # decode batch i+1 while batch i runs
            if future is not None:
                forward(future.result())
            future = nxt
        if future is not None:
            forward(future.result())
    if bar is not None:
        bar.close()
    writer.finish()
    write_failures(out, report.failures)
    return report


def progress_bar(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="embed", dynamic_ncols=True)


def write_failures(out: Path, failures: list[tuple[str, str]]) -> None:
    path = out.with_name(out.name + ".failures.tsv")
    if failures:
        lines = [f"{i}\t{reason}" for i, reason in failures]
        path.write_text("id\treason\n" + "\n".join(lines) + "\n")
    elif path.exists():
        path.unlink()
