"""Benchmark inputs: test products and distractors of a dataset, embedded or read back.

From a model, queries, targets and distractors are embedded into the one resumable cache
(:mod:`referred.catalog.cache`, keyed by stream position) under ``out_dir/embeddings/`` (one
folder per kind: queries per conditioning, targets, distractors); images are decoded in the
``decode`` mode of :mod:`referred.imageio`, and those that cannot be are skipped and listed
(``failures.tsv`` in the folder, and a note). From a folder of paper-era parquet embeddings,
the test split comes from the metadata files alone (:mod:`referred.data.metadata`; no image on
disk) and rows are matched to it by URL (:class:`referred.eval.embeddings.ParquetEmbeddings`):
the distractors that exist are those of the metadata with an embedding, in metadata order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from referred.catalog.cache import EmbeddingCache, EmbedItem, Stream, write_failures
from referred.categories import category_index
from referred.eval.encode import Benchmarkable, to_numpy
from referred.imageio import ImageDecodeError, decode_image

#: The words of the note that counts test products left out of the benchmark.
SKIPPED_PRODUCTS = "test products skipped"


@dataclass(frozen=True)
class _Products:
    keys: np.ndarray  # (n,) PRODUCT_ID as str
    categories: np.ndarray  # (n,) int


def open_dataset_like(data: Any) -> Any:
    from referred.data import Dataset, open_dataset

    return data if isinstance(data, Dataset) else open_dataset(Path(data))


def _category(name: str | None) -> int:
    if name is None:
        return -1
    try:
        return category_index(name)
    except ValueError:
        return -1


def _query_image(product: Any) -> Any:
    full = [im for im in product.complex if im.type.value == "COMPLEX"]
    return (full or list(product.complex))[0]


def product_items(
    source: Any, kind: str, conditioning: str, notes: list[str]
) -> Iterator[EmbedItem]:
    """Test products as :class:`EmbedItem`: ``kind`` ``"query"`` (complex image + condition)
    or ``"target"`` (simple image). ``source`` is a dataset (its test split is read) or the
    products themselves. Products without a query image, a target image or a known category
    are skipped (counted once in ``notes``, by the query pass)."""
    skipped = 0
    no_caption = 0
    products: Iterable[Any] = source.products("test") if hasattr(source, "products") else source
    for p in products:
        cat = _category(p.category)
        if not p.simple or not p.complex or cat < 0:
            skipped += 1
            continue
        if kind == "target":
            yield EmbedItem(p.product_id, p.simple[0], cat)
            continue
        cond: Any = None
        if conditioning == "category":
            cond = p.category
        elif conditioning == "text":
            cond = p.captions[0] if p.captions else p.category
            no_caption += not p.captions
        yield EmbedItem(p.product_id, _query_image(p), cat, cond)
    if kind == "query" and skipped:
        notes.append(f"{skipped} {SKIPPED_PRODUCTS} (no simple/complex image or no category)")
    if no_caption:
        notes.append(f"{no_caption} products have no caption: conditioned on the category name")


def distractor_items(ds: Any) -> Iterator[EmbedItem]:
    """Test distractors in metadata order; key = metadata row label, category -1 if unknown."""
    if "test" not in ds.distractor_splits:
        return
    for d in ds.distractors("test"):
        yield EmbedItem(str(d.distractor_id), d.image, _category(d.category))


def model_digest(model: Any) -> str:
    """A short digest of a torch module's weights (names, shapes, sums); the class name
    otherwise. Keeps a cache made by one model from being reused by another."""
    state = getattr(model, "state_dict", None)
    if not callable(state):
        return f"{type(model).__module__}.{type(model).__qualname__}"
    h = hashlib.sha1()
    for name, value in state().items():
        h.update(f"{name}{tuple(value.shape)}{float(value.double().sum()):.9g}".encode())
    return h.hexdigest()[:16]


def _image(item: EmbedItem, decode: str) -> Any:
    image = item.image
    return decode_image(image.read_bytes(), decode) if hasattr(image, "read_bytes") else image


def _encoder(model: Benchmarkable, query: bool, batch_size: int, decode: str) -> Callable:
    """Items -> (``(m, d)`` float32 of the ``m`` that decode, ``{index: reason}`` of the
    others), decoding ``batch_size`` images at a time (``decode``: a mode of
    :func:`referred.imageio.decode_image`)."""

    def encode(items: Sequence[EmbedItem]) -> tuple[np.ndarray, dict[int, str]]:
        out, failed = [], {}
        for start in range(0, len(items), batch_size):
            chunk, images = [], []
            for i, it in enumerate(items[start : start + batch_size], start):
                try:
                    images.append(_image(it, decode))
                    chunk.append(it)
                except (ImageDecodeError, OSError) as exc:
                    failed[i] = str(exc) or type(exc).__name__
            if not chunk:
                continue
            if query:
                conds = [it.cond for it in chunk]
                emb = model.encode_queries(images, None if conds[0] is None else conds)
            else:
                emb = model.encode_targets(images)
            out.append(_checked(to_numpy(emb), len(chunk)))
        return (np.concatenate(out) if out else np.zeros((0, 1), np.float32)), failed

    return encode


def _checked(emb: np.ndarray, n: int, tol: float = 1e-3) -> np.ndarray:
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"the model returned shape {emb.shape} for {n} images")
    norms = np.linalg.norm(emb, axis=1)
    if np.any(np.abs(norms - 1) > tol):
        raise ValueError(
            f"the model's embeddings are not L2-normalised (norms {norms.min():.4g}.."
            f"{norms.max():.4g}); normalise in encode_*"
        )
    return emb


class Progress:
    def __init__(self, enabled: bool, desc: str, total: int | None, unit: str = "img"):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def to(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _embed(
    cache_dir: Path,
    name: str,
    record: dict[str, Any],
    items: Iterator[EmbedItem],
    encode: Callable,
    limit: int | None,
    part_size: int,
    progress: bool,
) -> Stream:
    cache = EmbeddingCache(cache_dir / name, record)
    bar = Progress(progress, f"embed {name}", limit)
    try:
        stream = cache.ensure(items, encode, limit, part_size, on_rows=bar.add)
    finally:
        bar.close()
    write_failures(cache.folder / "failures.tsv", stream.failures)
    return stream


def _aligned(q: Stream, t: Stream, where: Path, notes: list[str]) -> tuple[np.ndarray, ...]:
    """Queries, targets, keys and categories of the products whose query and target images
    both embedded (an unreadable one leaves its product out, with a note)."""
    qkeep, tkeep = np.isin(q.keys, t.keys), np.isin(t.keys, q.keys)
    if not np.array_equal(q.keys[qkeep], t.keys[tkeep]):
        raise ValueError(f"query and target caches list different products; delete {where}")
    lost = {k for k, _ in q.failures + t.failures}
    if lost:
        notes.append(
            f"{len(lost)} {SKIPPED_PRODUCTS}: unreadable query or target image (listed in "
            f"failures.tsv under {where})"
        )
    return q.load()[qkeep], t.load()[tkeep], t.keys[tkeep], t.categories[tkeep]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Inputs:
    queries: np.ndarray
    targets: np.ndarray
    products: _Products
    labels: np.ndarray  # distractor labels of the stream, in order
    distractors: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]  # limit -> blocks
    available: int  # distractors that can be served: all of them when exhausted
    exhausted: bool  # True: fewer distractors exist than were asked for
    baseline_queries: Callable[[], np.ndarray] | None = None


def model_inputs(
    model: Benchmarkable,
    ds: Any,
    cond: str,
    want: int,
    out: Path,
    batch_size: int,
    shard_size: int,
    progress: bool,
    notes: list[str],
    decode: str = "default",
    remote: Any = None,
) -> Inputs:
    """Embed (or reuse) queries under ``cond``, targets and the first ``want`` distractors.

    ``remote``: a :class:`referred.catalog.ray_embed.RayEncoders` to embed on Ray (the same
    encode function, run by Ray tasks), or None to embed here."""
    digest = model_digest(model)
    base = {"model": digest, "data": str(Path(ds.root).resolve()), "layout": ds.layout}
    if decode != "default":
        base["decode"] = decode
    cache = out / "embeddings"

    def embed(name: str, record: dict, items: Iterator, query: bool, limit: int | None) -> Stream:
        if remote is None:
            enc = _encoder(model, query, batch_size, decode)
        else:
            enc = remote.encoder(_encoder, query, batch_size, decode)
        return _embed(cache, name, {**base, **record}, items, enc, limit, shard_size, progress)

    def queries(c: str, sink: list[str]) -> Stream:
        items = product_items(ds, "query", c, sink)
        return embed(f"queries-{c}", {"kind": "query", "conditioning": c}, items, True, None)

    q = queries(cond, notes)
    t = embed("targets", {"kind": "target"}, product_items(ds, "target", cond, []), False, None)
    qvecs, tvecs, keys, cats = _aligned(q, t, cache, notes)
    d = embed("distractors", {"kind": "target"}, distractor_items(ds), False, want)
    if d.failures:
        notes.append(
            f"{len(d.failures)} distractors skipped: unreadable image (listed in "
            f"{cache / 'distractors' / 'failures.tsv'})"
        )

    def baseline() -> np.ndarray:
        plain = queries("none", [])
        rows = {k: i for i, k in enumerate(plain.keys)}
        return plain.load()[[rows[k] for k in keys]]

    return Inputs(
        qvecs,
        tvecs,
        _Products(keys, cats),
        d.keys,
        lambda limit: d.blocks(limit),
        len(d),
        d.exhausted,
        baseline,
    )


def parquet_inputs(store: Path, ds: Any, want: int, notes: list[str]) -> Inputs:
    """Queries, targets and the first ``want`` existing distractors from paper-era parquet
    embeddings (re-normalised, as the paper's protocol does), the test split from the
    metadata files alone. A distractor of the metadata without an embedding does not exist
    for this run (counted in ``notes``)."""
    from referred.data import ReadStats
    from referred.data.metadata import metadata_files, read_distractor_table, read_test_products
    from referred.eval.embeddings import ParquetEmbeddings

    root = Path(ds.root)
    files = metadata_files(root)  # DataFileError naming the expected files
    stats = ReadStats()
    products = read_test_products(root, stats)
    lost = sum(stats.problem_counts[k] for k in ("missing-simple", "missing-complex"))
    lost += stats.problem_counts["unknown-category"]
    if lost:
        notes.append(f"{lost} {SKIPPED_PRODUCTS} by the metadata reader ({stats.summary()})")
    elif stats.errors:
        notes.append(f"test metadata: {stats.summary()}")
    rows = [
        (it.key, it.category, it.image.url)
        for it in product_items(products, "query", "none", notes)
    ]
    turls = [it.image.url for it in product_items(products, "target", "none", [])]
    if not rows:
        raise ValueError(f"no usable test products in the metadata of {root}")
    products_file = Path(store) / "products_embs.parquet"
    if not products_file.is_file():
        raise FileNotFoundError(
            f"{products_file} not found (the test queries' and targets' embeddings)"
        )
    embs = ParquetEmbeddings([products_file])
    queries, targets = embs.read([r[2] for r in rows]), embs.read(turls)
    table = read_distractor_table(files.distractors) if files.distractors else None
    dist_files = sorted(Path(store).glob("dist*.parquet"))
    source = ParquetEmbeddings(dist_files) if dist_files and table is not None else None
    found = source.find(table.urls) if source is not None else np.zeros(0, np.int64)
    exist = np.flatnonzero(found >= 0)
    if table is not None and exist.size < len(table):
        notes.append(
            f"{len(table) - exist.size} of the {len(table)} distractors of the metadata have no "
            f"embedding in {store} (dist*.parquet): only the {exist.size} embedded ones exist"
        )
    chosen = exist[:want]
    labels = table.labels[chosen] if table is not None else np.zeros(0, str)
    dcats = table.categories[chosen] if table is not None else np.zeros(0, np.int64)
    erows = found[chosen]

    def stream(limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = min(limit, erows.size)
        for start in range(0, n, 65_536):
            stop = min(start + 65_536, n)
            yield _unit(source.gather(erows[start:stop])), dcats[start:stop]

    pids = np.array([r[0] for r in rows], dtype=str)
    cats = np.array([r[1] for r in rows], dtype=np.int64)
    return Inputs(
        _unit(queries),
        _unit(targets),
        _Products(pids, cats),
        labels,
        stream,
        int(exist.size),
        int(exist.size) < want,
    )
