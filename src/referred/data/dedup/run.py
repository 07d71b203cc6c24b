"""Near-duplicate cleaning of a catalog, or of products against distractors (paper §3.1).

Stages: items (id, role, image) are read from a dataset or catalog and hashed, streaming
(:func:`hash_items`; one ``uint64`` an item is what stays in memory); vectors come from an
embeddings parquet (:func:`referred.catalog.cache.read_embeddings`); pairs are found by
perceptual hash (:mod:`.hamming`) and by embedding (:mod:`.vectors`), each pair scored by both
signals where both exist; :mod:`.groups` decides what the cleaned list keeps; the report is
written by :mod:`.report`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from referred.data.dedup.groups import PRODUCT, SCOPES, components, decide, scope_mask
from referred.data.dedup.hamming import HammingStats, hamming_pairs
from referred.data.dedup.phash import hamming, hash_thumbnails, thumbnail
from referred.data.dedup.vectors import VectorStats, embedding_pairs

METHODS = ("phash", "embedding")
COMBINES = ("any", "all")
#: Thumbnails hashed at once.
HASH_BATCH = 4096


@dataclass(frozen=True)
class DedupConfig:
    """How near is a duplicate.

    ``methods``: any of ``"phash"`` (Hamming distance of 64-bit pHashes ``<= max_hamming``)
    and ``"embedding"`` (cosine ``>= min_cosine``). ``combine``: with both methods, a pair
    counts when ``"any"`` method finds it, or only when ``"all"`` agree. ``scope``:
    ``"all"``, ``"cross"`` (products against distractors) or ``"within"`` (see
    :mod:`.groups`). ``nprobe``: IVF cells searched per vector above 20,000 vectors.
    """

    methods: tuple[str, ...] = ("phash",)
    max_hamming: int = 6
    min_cosine: float = 0.95
    combine: str = "all"
    scope: str = "all"
    nprobe: int = 4

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown dedup method(s) {bad or '(none)'}; expected {METHODS}")
        if not 0 <= self.max_hamming <= 64:
            raise ValueError(f"max_hamming must be in 0..64, got {self.max_hamming}")
        if not -1 <= self.min_cosine <= 1:
            raise ValueError(f"min_cosine must be in [-1, 1], got {self.min_cosine}")
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r}; expected one of {COMBINES}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; expected one of {SCOPES}")


@dataclass
class Items:
    """What the search sees: ids, roles (0 product, 1 distractor), hashes and vectors.

    ``hashes`` (n,) uint64 with ``has_hash`` (n,) bool; ``vectors`` (n, d) float32 unit rows
    with ``has_vector`` (n,) bool (rows without a vector are zeros). Either may be None.
    """

    ids: list[str]
    roles: np.ndarray
    hashes: np.ndarray | None = None
    has_hash: np.ndarray | None = None
    vectors: np.ndarray | None = None
    has_vector: np.ndarray | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DedupResult:
    """Pairs (``i``, ``j``, ``hamming`` (-1: no hash), ``cosine`` (nan: no vector)), what is
    kept, what each dropped item duplicates, the groups, and what the searches cost."""

    items: Items
    config: DedupConfig
    i: np.ndarray
    j: np.ndarray
    hamming: np.ndarray
    cosine: np.ndarray
    kept: np.ndarray
    duplicate_of: np.ndarray
    groups: list[np.ndarray]
    hamming_stats: HammingStats | None = None
    vector_stats: VectorStats | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def hash_items(
    items: Iterable[tuple[str, int, Any]], failures: list[tuple[str, str]] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """pHash every ``(id, role, image source)``; unreadable images are listed in
    ``failures`` as ``(id, reason)`` and kept out. Returns ``(ids, roles int8, hashes)``."""
    ids: list[str] = []
    roles: list[int] = []
    hashes: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for item_id, role, image in items:
        try:
            batch.append(thumbnail(image))
        except (ValueError, OSError, TypeError) as exc:
            if failures is not None:
                failures.append((item_id, str(exc)))
            continue
        ids.append(item_id)
        roles.append(role)
        if len(batch) == HASH_BATCH:
            hashes.append(hash_thumbnails(np.stack(batch)))
            batch = []
    if batch:
        hashes.append(hash_thumbnails(np.stack(batch)))
    out = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    return ids, np.asarray(roles, dtype=np.int8), out


def attach_vectors(items: Items, ids: list[str], vectors: np.ndarray) -> None:
    """Give ``items`` the vectors of the ids it has (others: ``has_vector`` False)."""
    row = {item_id: k for k, item_id in enumerate(ids)}
    where = np.array([row.get(item_id, -1) for item_id in items.ids], dtype=np.int64)
    items.has_vector = where >= 0
    items.vectors = np.zeros((len(items.ids), vectors.shape[1]), dtype=np.float32)
    items.vectors[items.has_vector] = vectors[where[items.has_vector]]


def find_duplicates(items: Items, config: DedupConfig) -> DedupResult:
    """Pairs by each method of ``config``, scored by both signals, filtered by ``combine``
    and ``scope``; then what is kept (:func:`.groups.decide`) and the groups."""
    seconds: dict[str, float] = {}
    found, hstats, vstats = [], None, None
    if "phash" in config.methods:
        if items.hashes is None:
            raise ValueError("the phash method needs images to hash; none were given")
        t0, hstats = time.perf_counter(), HammingStats()
        sub = np.flatnonzero(_mask(items.has_hash, len(items.ids)))
        i, j, _ = hamming_pairs(items.hashes[sub], config.max_hamming, stats=hstats)
        found.append((sub[i], sub[j]))
        seconds["phash"] = time.perf_counter() - t0
    if "embedding" in config.methods:
        if items.vectors is None:
            raise ValueError("the embedding method needs vectors (an embeddings parquet)")
        t0, vstats = time.perf_counter(), VectorStats()
        sub = np.flatnonzero(_mask(items.has_vector, len(items.ids)))
        i, j, _ = embedding_pairs(
            items.vectors[sub], config.min_cosine, nprobe=config.nprobe, stats=vstats
        )
        found.append((sub[i], sub[j]))
        seconds["embedding"] = time.perf_counter() - t0
    i, j = _union(found)
    ham, cos = _scores(items, i, j)
    keep = scope_mask(items.roles, i, j, config.scope) & _agree(ham, cos, config)
    i, j, ham, cos = i[keep], j[keep], ham[keep], cos[keep]
    kept, duplicate_of = decide(items.roles, i, j)
    groups = _groups(len(items.ids), i, j)
    return DedupResult(
        items, config, i, j, ham, cos, kept, duplicate_of, groups, hstats, vstats, seconds
    )


def _groups(n: int, i: np.ndarray, j: np.ndarray) -> list[np.ndarray]:
    """Components of the pairs, computed on the items that are in a pair only."""
    from referred.data.dedup.groups import group_members

    members = np.unique(np.concatenate([i, j]))
    local = np.searchsorted(members, i), np.searchsorted(members, j)
    return [members[g] for g in group_members(components(len(members), *local))]


def _mask(mask: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n, dtype=bool) if mask is None else mask


def _union(found: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not found:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    i = np.concatenate([f[0] for f in found]).astype(np.int64)
    j = np.concatenate([f[1] for f in found]).astype(np.int64)
    pairs = np.unique(np.stack([i, j], axis=1), axis=0)  # (p, 2) sorted by (i, j)
    return pairs[:, 0], pairs[:, 1]


def _scores(items: Items, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distance (-1 where a hash is missing) and cosine (nan where a vector is)."""
    ham = np.full(len(i), -1, dtype=np.int16)
    cos = np.full(len(i), np.nan, dtype=np.float32)
    if items.hashes is not None:
        ok = _mask(items.has_hash, len(items.ids))
        both = ok[i] & ok[j]
        ham[both] = hamming(items.hashes[i[both]], items.hashes[j[both]])
    if items.vectors is not None:
        ok = _mask(items.has_vector, len(items.ids))
        both = ok[i] & ok[j]
        cos[both] = np.einsum("nd,nd->n", items.vectors[i[both]], items.vectors[j[both]])
    return ham, cos


def _agree(ham: np.ndarray, cos: np.ndarray, config: DedupConfig) -> np.ndarray:
    """Which pairs every method of ``config`` agrees on (``combine="all"``), else all."""
    if config.combine == "any" or len(config.methods) == 1:
        return np.ones(len(ham), dtype=bool)
    return (ham >= 0) & (ham <= config.max_hamming) & (cos >= config.min_cosine)


def dataset_items(
    source: str | Path, split: str | None = None, *, distractors: bool = True
) -> Iterator[tuple[str, int, Any]]:
    """``(id, role, image)`` of a dataset's products (first SIMPLE image) and, with
    ``distractors``, its distractors of the same split; a catalog folder or table has only
    products. ``split``: default ``test`` for datasets with one, else the only split."""
    from referred.data import open_dataset
    from referred.data.base import SPLIT_ALIASES
    from referred.data.dedup.groups import DISTRACTOR

    ds = open_dataset(Path(source))
    if split is None:
        split = "test" if "test" in ds.splits else ds.splits[0]
    for product in ds.products(split):
        image = product.simple[0]
        yield product.product_id, PRODUCT, image.data if image.data is not None else image.path
    if distractors and SPLIT_ALIASES.get(split.lower()) in ds.distractor_splits:
        for d in ds.distractors(split):
            data = d.image.data if d.image.data is not None else d.image.path
            yield d.distractor_id, DISTRACTOR, data
