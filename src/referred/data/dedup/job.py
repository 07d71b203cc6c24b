"""One dedup job from files: read and hash the images, attach the vectors, search, report."""

from __future__ import annotations

import os
from itertools import chain
from pathlib import Path

import numpy as np

from referred.data.dedup.groups import DISTRACTOR, PRODUCT
from referred.data.dedup.report import write_report
from referred.data.dedup.run import (
    DedupConfig,
    DedupResult,
    Items,
    dataset_items,
    find_duplicates,
    hash_items,
)

PathLike = str | os.PathLike


def dedup_files(
    out: PathLike,
    config: DedupConfig,
    *,
    source: PathLike | None = None,
    split: str | None = None,
    distractors: PathLike | None = None,
    embeddings: PathLike | None = None,
    distractor_embeddings: PathLike | None = None,
) -> DedupResult:
    """Find near-duplicates and write the report (:mod:`.report`) into ``out``.

    ``source``: a dataset (any layout: its products of ``split`` and that split's
    distractors) or a catalog folder/table. ``distractors``: a second dataset or catalog whose
    items are the distractors. ``embeddings`` / ``distractor_embeddings``: (id, vector)
    parquets for the products and the distractors (the embedding method). Without ``source``
    the items are the ids of the embeddings parquets (embedding method only).
    """
    if source is None and embeddings is None:
        raise ValueError("give the items: a dataset or catalog, or an embeddings parquet")
    if distractor_embeddings is not None and embeddings is None:
        raise ValueError("distractor embeddings need the products' embeddings too")
    if "embedding" in config.methods and embeddings is None:
        raise ValueError("the embedding method needs --embeddings (an id, vector parquet)")
    if "phash" in config.methods and source is None:
        raise ValueError("the phash method needs images: give a dataset or catalog folder")
    items = _items(source, split, distractors, "phash" in config.methods)
    if embeddings is not None:
        _attach(items, embeddings, distractor_embeddings, from_vectors=source is None)
    result = find_duplicates(items, config)
    write_report(result, out)
    return result


def _items(
    source: PathLike | None, split: str | None, distractors: PathLike | None, hashed: bool
) -> Items:
    if source is None:
        return Items(ids=[], roles=np.zeros(0, dtype=np.int8))
    stream = dataset_items(source, split, distractors=distractors is None)
    if distractors is not None:
        extra = ((i, DISTRACTOR, img) for i, _, img in dataset_items(distractors, split))
        stream = chain(stream, extra)
    failures: list[tuple[str, str]] = []
    if not hashed:  # ids and roles only: no image is decoded
        listed = [(i, r) for i, r, _ in stream]
        return Items([i for i, _ in listed], np.asarray([r for _, r in listed], np.int8))
    ids, roles, hashes = hash_items(stream, failures)
    return Items(ids, roles, hashes, np.ones(len(ids), dtype=bool), failures=failures)


def read_embeddings(path: Path) -> tuple[list[str], np.ndarray]:
    """(ids, (n, d) float32) of an (id, vector) parquet (``referred embed``'s layout)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"no such embeddings parquet: {path}")
    table = pq.read_table(path, columns=["id", "vector"])
    vec = table.column("vector").combine_chunks()
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return table.column("id").to_pylist(), flat.reshape(-1, vec.type.list_size)


def _attach(
    items: Items, products: PathLike, distractors: PathLike | None, *, from_vectors: bool
) -> None:
    """Vectors for each role from its parquet, matched by id within the role; without a
    source, the parquets' ids become the items."""
    tables = [(PRODUCT, read_embeddings(Path(products)))]
    if distractors is not None:
        tables.append((DISTRACTOR, read_embeddings(Path(distractors))))
    if from_vectors:
        items.ids = [i for _, (ids, _) in tables for i in ids]
        items.roles = np.concatenate(
            [np.full(len(ids), role, dtype=np.int8) for role, (ids, _) in tables]
        )
    dim = tables[0][1][1].shape[1]
    items.vectors = np.zeros((len(items.ids), dim), dtype=np.float32)
    items.has_vector = np.zeros(len(items.ids), dtype=bool)
    for role, (ids, vectors) in tables:
        if vectors.shape[1] != dim:
            raise ValueError(f"embeddings of {dim} and {vectors.shape[1]} dimensions: two models?")
        row = {item_id: k for k, item_id in enumerate(ids)}
        for k in np.flatnonzero(items.roles == role):
            r = row.get(items.ids[k])
            if r is not None:
                items.vectors[k] = vectors[r]
                items.has_vector[k] = True
