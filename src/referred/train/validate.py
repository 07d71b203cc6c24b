"""Validation (and test) recall: embed a split's queries, targets and distractors, rank exactly.

Each product of the split gives one query — its first COMPLEX image under its condition (the
category, or for text models its first caption (``texts="caption"``) or its category name
(``texts="category"``), or nothing) — and one gallery item, its first
SIMPLE image, embedded without condition. The gallery is completed by the split's distractors
(the first ``max_distractors`` in reader order). R@K and Cat@1 come from the exact streamed
ranking of :mod:`referred.eval` (same tie rule as the benchmark).

Decoding runs in DataLoader workers; with several processes each embeds every W-th item and
the embeddings are gathered (then rank 0's numbers are everyone's).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from referred.categories import LRVSF_CATEGORIES
from referred.data import Dataset
from referred.eval.metrics import category_precision_at_k, recall_at_k
from referred.eval.ranking import sweep_ranks
from referred.eval.sources import array_blocks
from referred.imageio import ImageDecodeError
from referred.model import CondViT
from referred.preprocess import PreprocessConfig, preprocess_image
from referred.query import NONE, Condition, QueryEncoder, parse
from referred.train import distributed as D

#: Gallery category code of a product without a known category (matches only its own kind).
UNKNOWN_CATEGORY = len(LRVSF_CATEGORIES)
RECALL_KS = (1, 5, 10)


@dataclass
class SplitEmbeddings:
    """L2-normalised float32 embeddings of one split; ``skipped`` counts what was left out."""

    queries: np.ndarray  # (n, D)
    targets: np.ndarray  # (n, D)
    target_categories: np.ndarray  # (n,) int64
    distractors: np.ndarray  # (m, D)
    distractor_categories: np.ndarray  # (m,) int64, -1 unknown
    skipped: Counter = field(default_factory=Counter)


class _Unusable(Exception):
    """An item this model cannot be evaluated on (e.g. a category outside its table)."""


class _Stream(IterableDataset):
    """Items of a reader, decoded in workers; process ``rank`` and worker ``w`` take every
    ``world·workers``-th item. Yields ``(position, ok, arrays, category, condition text)``."""

    def __init__(self, items: Callable[[], Iterator[Any]], decode: Callable, rank: int, world: int):
        self.items, self.decode, self.rank, self.world = items, decode, rank, world

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        n_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        shards, shard = self.world * n_workers, self.rank * n_workers + worker
        for i, item in enumerate(self.items()):
            if i % shards == shard:
                try:
                    yield (i, True, *self.decode(item))
                except (ImageDecodeError, FileNotFoundError, _Unusable):
                    yield (i, False, None, -1, None)


def _category_code(name: str | None) -> int:
    return LRVSF_CATEGORIES.index(name) if name in LRVSF_CATEGORIES else UNKNOWN_CATEGORY


#: What a text model's query is conditioned on in validation.
TEXT_SOURCES = ("caption", "category")


def _product_item(
    product: Any, cfg: PreprocessConfig, categories: tuple[str, ...], texts: str = "caption"
) -> tuple:
    if categories and product.category not in categories:
        raise _Unusable(product.product_id)
    pixels = np.stack(
        [
            preprocess_image(product.complex[0].read_bytes(), cfg),
            preprocess_image(product.simple[0].read_bytes(), cfg),
        ]
    )  # (2, 3, S, S): query, target
    captions = product.captions if texts == "caption" else ()
    text = captions[0] if captions else (product.category or "product")
    return pixels, _category_code(product.category), text


def _distractor_item(distractor: Any, cfg: PreprocessConfig) -> tuple:
    pixels = preprocess_image(distractor.image.read_bytes(), cfg)[None]  # (1, 3, S, S)
    cat = distractor.category
    return pixels, LRVSF_CATEGORIES.index(cat) if cat in LRVSF_CATEGORIES else -1, None


def _conditions(config: Any, cats: list[int], texts: list[str]) -> list[Condition]:
    """What a shopper would send for each product, by :mod:`referred.query`'s rules: its
    category name (a category model) or its text (a text model: caption or category name)."""
    if not config.conditional:
        return [NONE] * len(cats)
    if config.categories:
        return [parse(config, category=LRVSF_CATEGORIES[c]) for c in cats]
    return [parse(config, text=t) for t in texts]


def _embed_stream(
    model: CondViT, stream: _Stream, workers: int, batch_size: int, autocast: Any, text_memo: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Embed a stream → positions (n,), embeddings (n, k, D), categories (n,), failures.

    Through :class:`referred.query.QueryEncoder` with the plain forward (the model is training,
    possibly under autocast), as every other caller embeds."""
    encoder = QueryEncoder(model, fast=False, text_encoder=text_memo)
    loader = DataLoader(stream, batch_size=batch_size, num_workers=workers, collate_fn=list)
    positions, rows, cats, failed = [], [], [], 0
    for items in loader:
        good = [it for it in items if it[1]]
        failed += len(items) - len(good)
        if not good:
            continue
        pixels = torch.from_numpy(np.stack([it[2] for it in good]))  # (b, k, 3, S, S)
        k = pixels.shape[1]  # 2: query and target; 1: a distractor
        nones = [NONE] * len(good)
        with autocast:
            if k == 2:  # products: the conditioned query, then the target without condition
                conds = _conditions(model.config, [it[3] for it in good], [it[4] for it in good])
                emb = [encoder.forward(pixels[:, 0], conds), encoder.forward(pixels[:, 1], nones)]
            else:  # distractors: gallery items, without condition
                emb = [encoder.forward(pixels[:, 0], [NONE] * len(good))]
        rows.append(torch.stack(emb, 1).numpy())  # (b, k, D), unit rows
        positions += [it[0] for it in good]
        cats += [it[3] for it in good]
    dim = model.config.output_dim
    return (
        np.asarray(positions, np.int64),
        np.concatenate(rows) if rows else np.zeros((0, 1, dim), np.float32),
        np.asarray(cats, np.int64),
        failed,
    )


def _gathered(part: tuple) -> tuple[np.ndarray, np.ndarray, int]:
    """Every process's part, concatenated and sorted by stream position:
    embeddings (n, k, D), categories (n,), failures."""
    parts = D.all_gather_objects(part)
    pos = np.concatenate([p[0] for p in parts])
    order = np.argsort(pos, kind="stable")
    emb = np.concatenate([p[1] for p in parts])[order]
    return emb, np.concatenate([p[2] for p in parts])[order], sum(p[3] for p in parts)


@torch.inference_mode()
def embed_split(
    model: CondViT,
    dataset: Dataset,
    split: str,
    *,
    max_distractors: int | None = None,
    batch_size: int = 128,
    workers: int = 0,
    autocast: Any = None,
    text_encoder: Callable | None = None,
    rank: int = 0,
    world_size: int = 1,
    texts: str = "caption",
) -> SplitEmbeddings:
    """Embed the products and distractors of ``split`` (see the module docstring)."""
    if texts not in TEXT_SOURCES:
        raise ValueError(f"texts must be one of {TEXT_SOURCES}, got {texts!r}")
    was_training = model.training
    model.eval()
    ctx = autocast if autocast is not None else contextlib.nullcontext()
    cfg = model.config.preprocess
    cats = model.config.categories
    products = _Stream(
        lambda: dataset.products(split),
        lambda p: _product_item(p, cfg, cats, texts),
        rank,
        world_size,
    )
    prod = _gathered(_embed_stream(model, products, workers, batch_size, ctx, text_encoder))
    limit = max_distractors

    def distractor_items() -> Iterator[Any]:
        if split not in dataset.distractor_splits or limit == 0:
            return
        for i, d in enumerate(dataset.distractors(split)):
            if limit is not None and i >= limit:
                return
            yield d

    dists = _Stream(distractor_items, lambda d: _distractor_item(d, cfg), rank, world_size)
    dist = _gathered(_embed_stream(model, dists, workers, batch_size, ctx, text_encoder))
    model.train(was_training)
    empty = np.zeros((0, model.config.output_dim), np.float32)
    return SplitEmbeddings(
        queries=prod[0][:, 0] if len(prod[0]) else empty,
        targets=prod[0][:, 1] if len(prod[0]) else empty,
        target_categories=prod[1],
        distractors=dist[0][:, 0] if len(dist[0]) else empty,
        distractor_categories=dist[1],
        skipped=Counter({"unusable-product": prod[2], "corrupt-distractor": dist[2]}),
    )


def retrieval_metrics(
    emb: SplitEmbeddings,
    ks: tuple[int, ...] = RECALL_KS,
    distractor_counts: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """``R@K`` for ``ks`` and ``Cat@1`` (fractions) over the gallery + all distractors, or, with
    ``distractor_counts``, a dict of them for each count (the first ``n`` distractors)."""
    if len(emb.queries) == 0:
        raise ValueError("no query could be embedded: the split has no usable product")
    n_dist = len(emb.distractors)
    counts = (n_dist,) if distractor_counts is None else distractor_counts
    if max(counts) > n_dist:
        raise ValueError(f"distractor counts {counts} exceed the {n_dist} distractors embedded")
    res = sweep_ranks(
        emb.queries,
        emb.targets,
        emb.target_categories,
        array_blocks(emb.distractors, emb.distractor_categories),
        counts,
        k=max(ks),
    )
    out: dict[int, dict[str, float]] = {}
    for i, n in enumerate(res.distractor_counts):
        row = {f"R@{k}": recall_at_k(res.ranks[i], k) for k in ks}
        row["Cat@1"] = category_precision_at_k(res.topk_categories[i], res.target_categories, 1)
        out[n] = row
    return out[n_dist] if distractor_counts is None else out


def evaluate_split(
    model: CondViT,
    dataset: Dataset,
    split: str = "test",
    *,
    max_distractors: int | None = None,
    batch_size: int = 128,
    workers: int = 0,
    text_encoder: Callable | None = None,
    distractor_counts: tuple[int, ...] | None = None,
    texts: str = "caption",
) -> dict[str, Any]:
    """Recall of a trained model on ``split`` (default the test split and its distractors).

    With ``distractor_counts`` the metrics are given for each count, under ``"sweep"``. A text
    model's queries are conditioned on each product's first caption (``texts="caption"``) or
    on its bare category name (``texts="category"``, what a category chip sends).
    """
    if text_encoder is None and model.config.cond_dim is not None:
        from referred.model.encoding import text_encoder as model_text_encoder
        from referred.model.text import TextMemo

        text_encoder = TextMemo(model_text_encoder(model))
    emb = embed_split(
        model,
        dataset,
        split,
        max_distractors=max_distractors,
        batch_size=batch_size,
        workers=workers,
        text_encoder=text_encoder,
        texts=texts,
    )
    metrics: dict[str, Any] = dict(retrieval_metrics(emb))
    metrics.update(n_queries=len(emb.queries), n_distractors=len(emb.distractors))
    if distractor_counts is not None:
        metrics["sweep"] = retrieval_metrics(emb, distractor_counts=distractor_counts)
    metrics["skipped"] = {k: v for k, v in emb.skipped.items() if v}
    return metrics
