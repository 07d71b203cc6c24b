"""Build a searchable catalog index: embed products unconditioned, store metadata, save.

Stages: read the catalog (a folder of images or a parquet/CSV table) → embed every product
image without condition into a resumable parquet (``referred.embed.embed_items``, or a Ray Data
job) → add vectors and metadata to an index of the chosen spec → for an approximate spec,
measure its recall@10 against exact search → record the model in ``index.info`` → save
atomically. Embeddings live in a work directory (default ``<out>.work/``) so that a re-run
resumes where it stopped and a rebuild with another spec re-embeds nothing; they record the
model's fingerprint (:mod:`referred.catalog.cache`), so another model is refused there.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from referred.catalog.cache import EmbedReport, read_embeddings
from referred.catalog.tune import (
    Tuning,
    exact_neighbours,
    recall_of,
    sample_rows,
    tune_to_recall,
)
from referred.embed import embed_items
from referred.index import create_index
from referred.search.provenance import model_record

log = logging.getLogger(__name__)

#: Vectors added per ``index.add`` call.
ADD_BATCH = 100_000
#: Metadata keys that hold the catalog's own columns under these names.
_CORE = ("category", "title", "image")
#: Metadata field names the backends reserve.
_RESERVED = ("id", "vector")


@dataclass
class BuildReport:
    """What a build did. ``recall_at_10`` is None for exact specs."""

    index_dir: Path
    spec: str
    count: int
    embeddings: Path
    embedded: int = 0
    already_done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    embed_seconds: float = 0.0
    index_seconds: float = 0.0
    recall_at_10: float | None = None
    recall_queries: int = 0
    tuning: Tuning | None = None  # with target_recall: the knob, its value and the curve
    dedup: dict[str, Any] | None = None  # with dedup: what was left out (index.info["dedup"])
    auto: str | None = None  # with spec "auto": why this spec (index.info["auto"])


def build_catalog_index(
    model: Any,
    out: str | Path,
    *,
    source: str | Path | None = None,
    embeddings: str | Path | None = None,
    spec: str = "flat",
    index_options: dict[str, Any] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    work_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    model_ref: str | None = None,
    recall_queries: int = 1000,
    seed: int = 0,
    target_recall: float | None = None,
    dedup: Any = None,
    memory_budget: int | None = None,
) -> BuildReport:
    """Embed the catalog ``source`` (folder or table) with ``model`` and save an index at ``out``.

    ``embeddings``: use this (id, vector) parquet instead of embedding; with ``source`` too,
    the catalog supplies the metadata. ``engine``: ``"local"`` or ``"ray"`` (a Ray Data job on
    ``ray_address``, or a local Ray with 2 CPUs). ``model_ref`` (the model's path or hub id) is
    recorded so that ``Searcher.open`` and ``referred search`` can reload the model.
    ``target_recall`` (approximate faiss specs): raise ``ef_search`` / ``nprobe`` until
    recall@10 against exact search reaches it (:func:`referred.catalog.tune.tune_to_recall`);
    the tuned value is saved with the index and the curve in ``index.info["tuning"]``.
    ``dedup``: a ``DedupConfig`` or a ``kept.txt`` path; near-duplicates are not indexed
    (:func:`referred.catalog.dedup.apply_dedup`; the report goes to ``<work dir>/dedup/``).
    ``spec="auto"`` chooses the spec for the catalog's size within ``memory_budget`` bytes
    resident (:func:`referred.index.auto.choose_spec`) and, for an approximate one, tunes it to
    ``target_recall`` (default 0.95); the choice and why are in ``index.info["auto"]``.
    """
    auto = spec.strip().lower() == "auto"
    if memory_budget is not None and not auto:
        raise ValueError("a memory budget goes with spec 'auto' (it chooses the spec to fit)")
    if source is None and embeddings is None:
        raise ValueError("give a catalog source (folder or table) or an embeddings parquet")
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; expected 'local' or 'ray'")
    if target_recall is not None:  # refused before any work, not after the index is filled
        if not 0 < target_recall <= 1:
            raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
        if not auto and not spec.strip().lower().startswith("faiss:"):
            raise ValueError(
                f"--target-recall tunes faiss specs (HNSW: ef_search, IVF: nprobe), not {spec!r}"
            )
    out = Path(out)
    record = model_record(model, model_ref)
    meta: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    if embeddings is None:
        emb = _work(out, work_dir)
        run = _Run(engine, ray_address, workers, batch_size, progress)
        report = _embed(model, Path(source), emb, meta, run)
    else:
        report = EmbedReport(output=Path(embeddings))
        if source is not None:
            for _ in catalog_records(Path(source), meta):
                pass
    embed_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids, vectors = _vectors(report.output, model.config.output_dim, meta if source else None)
    dedup_info = None
    if dedup is not None:
        from referred.catalog.dedup import apply_dedup

        src = Path(source) if source is not None else None
        report_dir = _work(out, work_dir).parent / "dedup"
        ids, vectors, dedup_info = apply_dedup(dedup, ids, vectors, src, report_dir)
    choice = None
    if auto:
        from referred.index.auto import choose_spec

        choice = choose_spec(len(ids), int(vectors.shape[1]), memory_budget)
        spec = choice.spec
        log.info("spec auto: %s (%s)", spec, choice.reason)
        if target_recall is None and choice.approximate:
            target_recall = 0.95
    metadata = [meta.get(i, {}) for i in ids]
    index = fill_index(spec, ids, vectors, metadata, options=index_options, seed=seed)
    index_seconds = time.perf_counter() - t0
    recall, n_queries, tuning = None, 0, None
    if target_recall is not None and _approximate(spec) and len(ids) > 1:
        tuning = tune_to_recall(
            index, ids, vectors, target_recall, n_queries=max(recall_queries, 100), seed=seed
        )
        recall, n_queries = tuning.curve[-1].recall, tuning.queries
    elif _approximate(spec) and len(ids) > 1 and recall_queries > 0:
        recall, n_queries = recall_against_exact(index, ids, vectors, recall_queries, seed=seed)
    index.info = {
        "model": record,
        "embedding_dim": int(vectors.shape[1]),
        "source": None if source is None else str(Path(source).absolute()),
        "embeddings": str(report.output.absolute()),
        "count": len(ids),
        "recall_at_10": recall,
        "recall_queries": n_queries,
        "tuning": None if tuning is None else tuning.to_dict(),
        "dedup": dedup_info,
        "auto": None
        if choice is None
        else {"spec": spec, "reason": choice.reason, "resident_bytes": choice.resident_bytes},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    index.save(out)
    return BuildReport(
        out,
        spec,
        len(ids),
        report.output,
        report.embedded,
        report.already_done,
        report.failures,
        embed_seconds,
        index_seconds,
        recall,
        n_queries,
        tuning,
        dedup_info,
        None if choice is None else choice.reason,
    )


@dataclass(frozen=True)
class _Run:
    """How to embed: engine, Ray address and actors, batch size, progress bar."""

    engine: str
    ray_address: str | None
    workers: int | None
    batch_size: int
    progress: bool


def _vectors(path: Path, dim: int, catalog: dict[str, Any] | None) -> tuple[list[str], np.ndarray]:
    """(ids, (n, dim) vectors) of an embeddings parquet, restricted to ``catalog``'s ids."""
    ids, vectors = read_embeddings(path)
    if vectors.shape[1] != dim:
        raise ValueError(
            f"{path} holds {vectors.shape[1]}-d vectors but the model outputs {dim}-d ones: "
            "embeddings of another model?"
        )
    if catalog is not None:  # drop products no longer in the catalog
        keep = np.asarray([i in catalog for i in ids], dtype=bool)
        ids, vectors = [i for i, k in zip(ids, keep) if k], vectors[keep]
    return ids, vectors


def _work(out: Path, work_dir: str | Path | None) -> Path:
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
    return work / "embeddings.parquet"


def _embed(
    model: Any, source: Path, emb: Path, meta: dict[str, dict[str, Any]], run: _Run
) -> EmbedReport:
    """Embed ``source`` into ``emb`` (resuming), filling ``meta`` on the way."""
    if not source.exists():
        raise FileNotFoundError(f"no such catalog folder or file: {source}")
    items = ((pid, image) for pid, image, _ in catalog_records(source, meta))
    total = _count(source)
    if run.engine == "ray":
        from referred.catalog.ray_embed import embed_with_ray

        return embed_with_ray(
            model,
            items,
            emb,
            address=run.ray_address,
            workers=run.workers,
            batch_size=run.batch_size,
            progress=run.progress,
            total=total,
        )
    return embed_items(
        model, items, emb, batch_size=run.batch_size, progress=run.progress, total=total
    )


def _count(source: Path) -> int | None:
    """Products in ``source`` when cheap to know (parquet row count, image files of a folder)."""
    if source.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source).metadata.num_rows
    if source.is_dir():
        from referred.data.catalog import IMAGE_SUFFIXES

        return sum(1 for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return None


def catalog_records(
    source: Path, meta: dict[str, dict[str, Any]]
) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """``(id, image bytes or path, metadata)`` of every catalog product; also fills ``meta``.

    Metadata: ``category`` (canonical LRVS-F name or None), ``title``, ``image`` (absolute
    path, or a URL column's value when the table stores image bytes) and every other scalar
    column of the table under a name Milvus also accepts (``Unit Price`` → ``unit_price``).
    """
    from referred.data.catalog import CatalogDataset

    for product in CatalogDataset(source).products("catalog"):
        image = product.simple[0]
        record = {
            "category": product.category,
            "title": product.captions[0] if product.captions else None,
            "image": str(image.path.absolute()) if image.path is not None else None,
            **_extras(image.meta),
        }
        if record["image"] is None:
            record["image"] = record.get("url") or record.get("image_url")
        record = {k: v for k, v in record.items() if v is not None}
        meta[product.product_id] = record
        yield product.product_id, (image.data if image.data is not None else image.path), record


def _extras(row: dict[str, Any]) -> dict[str, Any]:
    """The table's other scalar columns (id, image, category and title columns dropped)."""
    from referred.data import catalog as cat
    from referred.data.assemble import is_missing
    from referred.data.files import find_column

    names = list(row)
    skip = {
        find_column(names, aliases)
        for aliases in (
            cat.ID_ALIASES,
            cat.IMAGE_BYTES_ALIASES,
            cat.IMAGE_PATH_ALIASES,
            cat.CATEGORY_ALIASES,
            cat.TITLE_ALIASES,
        )
    }
    out = {}
    for name, value in row.items():
        key = re.sub(r"\W+", "_", str(name)).strip("_").lower()
        if name in skip or not key or key in _CORE or key in _RESERVED:
            continue
        if key[0].isdigit():
            key = f"f_{key}"
        if isinstance(value, (str, bool, int, float)) and not is_missing(value):
            out[key] = value
    return out


def fill_index(
    spec: str,
    ids: list[str],
    vectors: np.ndarray,
    metadata: list[dict[str, Any]] | None = None,
    *,
    options: dict[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """A new index of ``spec`` (any :func:`referred.index.create_index` takes, with
    ``options``) holding ``vectors`` under ``ids``: trained first on a seeded sample of up to
    max(39 × its lists, 10,000) vectors when it needs training, then filled in batches of
    ``ADD_BATCH``; ``metadata`` (one dict per id, default none) is stored beside each row."""
    metadata = metadata if metadata is not None else [{}] * len(ids)
    if len(metadata) != len(ids) or len(vectors) != len(ids):
        raise ValueError(
            f"{len(ids)} ids need as many vectors and metadata rows, got {len(vectors)} "
            f"vectors and {len(metadata)} rows"
        )
    options = options or {}
    if not ids:
        raise ValueError("the catalog produced no embeddings: nothing to index")
    index = create_index(spec, vectors.shape[1], **options)
    if len(index):  # an existing Milvus collection: never mix two builds
        raise ValueError(
            f"{spec} already holds {len(index)} products; build into a new collection "
            "(--option collection=NAME) or drop this one first"
        )
    if not index.is_trained:
        hard_min = getattr(index, "hard_min", 1)
        n_train = min(len(ids), max(39 * hard_min, 10_000))
        sample = np.random.default_rng(seed).choice(len(ids), n_train, replace=False)
        log.info("training %s on %d vectors", spec, n_train)
        index.train(vectors[np.sort(sample)])
    for start in range(0, len(ids), ADD_BATCH):
        stop = start + ADD_BATCH
        index.add(ids[start:stop], vectors[start:stop], metadata[start:stop])
    if hasattr(index, "wait_until_indexed"):  # a Milvus server indexes after the inserts
        log.info("waiting for %s to build its vector index", spec)
        index.wait_until_indexed()
    return index


def _approximate(spec: str) -> bool:
    norm = spec.strip().lower().replace(" ", "")
    return norm not in ("flat", "faiss:flat")


def recall_against_exact(
    index: Any,
    ids: list[str],
    vectors: np.ndarray,
    n_queries: int = 1000,
    k: int = 10,
    seed: int = 0,
) -> tuple[float, int]:
    """Recall@k of ``index`` against exact search, with a seeded sample of ``n_queries``
    catalog products as queries (:mod:`referred.catalog.tune`). Returns (recall, queries)."""
    rows = sample_rows(len(ids), n_queries, seed)
    truth = exact_neighbours(ids, vectors, rows, k)
    return recall_of(index, ids, vectors, rows, truth, k), len(rows)
