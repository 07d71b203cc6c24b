"""The Searcher: a model and an index answering referred queries. No web framework here.

A query is a photo plus what the shopper points at (a category, a free text, or nothing); the
model embeds it conditioned, the index returns the nearest catalog products (embedded
unconditioned), and each hit carries the product's metadata.

Threads: every method may be called from several threads at once, and the Searcher is the
only lock layer (a web layer adds none). Image decoding and preprocessing run unlocked; model
forwards run as many at once as the cores hold (:mod:`referred.slots`: two one-thread forwards
on two cores, one forward of two threads), since more only thrash (torch inference itself is
thread-safe); the text and trunk memos lock their own state. Index calls go through a
readers-writer lock: searches share it (backends declaring ``thread_safe_search``: flat,
faiss) or take it alone (Milvus). The catalog writes offered here
(:meth:`Searcher.upsert_product`, :meth:`Searcher.delete_product`) take it alone for the index
change only: a new product's forward runs before, like a search's, so a write never holds
searches up for a forward. Writes and :meth:`Searcher.save_index` first queue on a mutex of
their own, so a write waiting for a save does not hold back searches (a writer waiting on the
readers-writer lock would). While it serves, write through the Searcher, not through the index.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from referred.cir.compose import Composer, check_modification, no_combiner_error
from referred.feedback import MAX_FEEDBACK_IDS, exclusion_terms, mentions, refine
from referred.imageio import Photo
from referred.index import EmptyIndexError, UnknownIdError
from referred.index.base import PAD_ID, SearchResult
from referred.model.trunk_memo import TrunkMemo
from referred.query import NONE, Condition, QueryEncoder, canonical_category
from referred.region import crop_source
from referred.search.errors import QueryError, UnknownProductError, UnsupportedConditionError
from referred.search.locks import ReadWriteLock
from referred.search.presence import PresenceQueries
from referred.search.provenance import check_model

log = logging.getLogger(__name__)
#: Most photos one search may take (several photos of the same item).
MAX_QUERY_IMAGES = 8


@dataclass(frozen=True)
class Hit:
    """One result: the product id, its score (cosine similarity) and its metadata.

    ``metadata`` holds what the index stores (category, title, image path or URL, extra
    catalog fields), without ``id``. ``weak``: probably not the item asked for, because the
    score is under the model's score floor (:mod:`referred.presence.floor`; photo queries),
    where true matches rarely fall, or because the product's ``category`` is not the one asked.
    """

    id: str
    score: float
    metadata: dict[str, Any]
    weak: bool = False


class Searcher(PresenceQueries):
    """Referred visual search over a catalog index with a CondViT model.

    ``batch_size`` caps the images per forward in :meth:`search_many`; ``max_k`` caps k;
    ``threads``, when given, sets ``torch.set_num_threads`` (process-wide; 1 is fastest on
    small CPU machines). ``fast`` (default) runs a CPU CondViT through
    :func:`referred.model.fast.optimize_for_inference` (same embeddings to ~1e-6, faster).
    ``trunk_memo_mb``: for a hybrid model, memory for the trunk maps of the latest photos
    (:mod:`referred.model.trunk_memo`, least recently used forgotten): the same photo asked
    for another item runs only the transformer. 0 turns it off.
    """

    def __init__(
        self,
        model: Any,
        index: Any,
        *,
        batch_size: int = 32,
        max_k: int = 1000,
        threads: int | None = None,
        fast: bool = True,
        trunk_memo_mb: float = 256,
    ) -> None:
        if batch_size < 1 or max_k < 1:
            raise ValueError(f"batch_size and max_k must be >= 1, got {batch_size}, {max_k}")
        if trunk_memo_mb < 0:
            raise ValueError(f"trunk_memo_mb must be >= 0, got {trunk_memo_mb}")
        self.model = model.eval()
        if getattr(model, "trunk", None) is not None and trunk_memo_mb > 0:
            model.trunk_memo = TrunkMemo(int(trunk_memo_mb * 1e6), policy="lru")
        #: the one path from images and conditions to vectors (rules, fast forward, batching)
        self.encoder = QueryEncoder(self.model, fast=fast, batch_size=batch_size)
        #: composes ``modify`` ("this, but in red"); None when the model has no Combiner
        self.composer = Composer.of(self.model, self.encoder)
        self.index = index
        self.batch_size = int(batch_size)
        self.max_k = int(max_k)
        self.model_matches_index = check_model(model, index)
        self._config = model.config
        self.categories: tuple[str, ...] = tuple(self._config.categories)
        self.accepts_text: bool = self._config.cond_dim is not None
        #: What a shopper can pick as a category: the model's table, or for a text model
        #: LRVS-F's names, which it receives as texts ("Bags").
        self.category_choices: tuple[str, ...] = self.encoder.category_choices
        #: photo-query results scoring under it are weak (:mod:`referred.presence.floor`)
        self.score_floor: float | None = getattr(model, "score_floor", None)
        self._rw = ReadWriteLock()
        #: Catalog changes and saves, one at a time, queue here rather than on ``_rw``: a writer
        #: waiting on ``_rw`` would hold new searches back for as long as a save reads.
        self._changing = threading.Lock()
        self._shared_reads = bool(getattr(index, "thread_safe_search", False))
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))

    @classmethod
    def open(cls, index_dir: str | Path, model: Any = None, **kwargs: Any) -> Searcher:
        """Load a saved index and, unless ``model`` is given, the model recorded at build time."""
        from referred.index import load_index

        index = load_index(index_dir)
        if model is None:
            path = ((index.info or {}).get("model") or {}).get("path")
            if not path:
                raise QueryError(f"{index_dir} records no model path; pass the model explicitly")
            from referred.model import load_model

            model = load_model(path)
        return cls(model, index, **kwargs)

    def __len__(self) -> int:
        with self._reading():
            return len(self.index)

    @property
    def info(self) -> dict[str, Any]:
        """What the index recorded at build time (model, source, recall, …)."""
        return dict(getattr(self.index, "info", None) or {})

    # ------------------------------------------------------------------------- queries

    def search(
        self,
        image: Any,
        *,
        category: str | None = None,
        text: str | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        box: Any = None,
        positive_ids: Sequence[str] = (),
        negative_ids: Sequence[str] = (),
        exclude_ids: Sequence[str] = (),
        exclude_categories: Sequence[str] = (),
        exclude_texts: Sequence[str] = (),
        modify: str | None = None,
        like: str | None = None,
    ) -> list[Hit]:
        """The k catalog products nearest to ``image`` conditioned on ``category`` or ``text``
        (neither: the image alone), best first, among those matching ``filter``. ``image`` may
        be a list of up to :data:`MAX_QUERY_IMAGES` photos of the same item: their queries
        are averaged.

        ``modify`` ("in red", "same but striped"; at most
        :data:`~referred.cir.compose.MAX_MODIFY_CHARS` characters) composes the query with the
        model's Combiner (:mod:`referred.cir`): this item, changed so. ``like`` (a product id,
        instead of a photo) starts from that catalog product's stored vector and never
        returns it. Without ``modify`` the query vector is the model's own, unchanged.

        ``box`` (``"x0,y0,x1,y1"`` in fractions or pixels, :mod:`referred.region`): search with
        that part of the photo only. Feedback (:mod:`referred.feedback`): ``positive_ids`` /
        ``negative_ids`` are catalog products marked good / bad, which move the query towards
        / away from them (``image`` may then be None: "more like these"); ``exclude_ids`` are
        never returned, nor products whose ``category`` is one of ``exclude_categories`` ("not
        shoes"; names as for ``category``), nor products whose catalog text (title, caption,
        colour, …) names one of ``exclude_texts`` as whole words ("not the black one":
        ``["black"]``; :func:`referred.feedback.mentions`). Unknown ids are an
        :class:`UnknownProductError`."""
        cond = self.encoder.parse(category, text)
        k = self._check_k(k)
        positive, negative, exclude = self._feedback_ids(positive_ids, negative_ids, exclude_ids)
        banned = self._category_names(exclude_categories, "exclude_categories")
        try:
            terms = exclusion_terms(exclude_texts)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        modification = self._modification(modify)
        if like is not None:
            query = self._like_vector(like, image, cond, box)
            exclude.append(like)
        elif image is None:
            if not positive:
                raise QueryError("a search needs a photo, or positive_ids to search like")
            if cond.kind != "none" or box is not None:
                raise QueryError("a condition or a box needs a photo to apply to")
            query = None
        else:
            query = self._query_of(image, cond, box)  # (D,)
        if modification is not None:
            if query is None:
                raise QueryError("modify needs a photo or like=<product id> to apply to")
            query = self.composer(query[None, :], [modification])[0]  # type: ignore[misc]
        if positive or negative:
            pos, neg = self._stored_vectors(positive), self._stored_vectors(negative)
            try:
                vector = refine(query, pos, neg)
            except ValueError as exc:
                raise QueryError(str(exc)) from None
        else:
            vector = query
        # the floor is measured for photo queries: a composed or catalog-started one scores
        # on another scale
        floor = self.score_floor if like is None and modification is None else None
        weak = (floor, self._asked_category(cond))
        return self._search_excluding(vector, k, filter, set(exclude), banned, terms, weak)

    def search_many(
        self,
        images: Sequence[Any],
        conditions: Sequence[Any] | None = None,
        *,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """A batch of queries; ``conditions[i]`` goes with ``images[i]``.

        Each condition is None, a category or text str (a category when the model knows it),
        or ``{"category": …}`` / ``{"text": …}``. Queries of one kind share one forward (up to
        ``batch_size`` images); unconditioned, category and text queries need separate ones.
        """
        images = list(images)
        conds = [None] * len(images) if conditions is None else list(conditions)
        if len(conds) != len(images):
            raise QueryError(f"{len(images)} images but {len(conds)} conditions")
        parsed = self.encoder.conditions(conds, len(conds))
        k = self._check_k(k)
        if not images:
            return []
        vectors = self._embed(images, parsed)
        asked = [self._asked_category(c) for c in parsed]
        return self._search_vectors(vectors, k, [filter] * len(images), self.score_floor, asked)

    def shop_the_look(
        self,
        image: Any,
        *,
        categories: Sequence[str] | None = None,
        k: int = 10,
        filter_by_category: bool = True,
        filter: Mapping[str, Any] | None = None,
        box: Any = None,
    ) -> dict[str, list[Hit]]:
        """The products of every category in one photo: one forward for all categories.

        ``categories`` default to the model's (LRVS-F's names, as texts, for a text model).
        With ``filter_by_category`` each category's results are restricted to products of that
        category (when the index has a ``category`` field); ``filter`` applies to all;
        ``box`` limits the photo to a region (:mod:`referred.region`).
        """
        if not self._config.conditional:
            raise UnsupportedConditionError("shop the look needs a conditioned model")
        names = categories if categories is not None else self.category_choices
        if isinstance(names, str):
            raise QueryError(f"categories must be a list of names, got the str {names!r}")
        parsed = list(dict.fromkeys(self.encoder.parse(category=c) for c in names))
        if not parsed:
            raise QueryError("shop the look needs at least one category")
        k = self._check_k(k)
        region = self._region(image, box)
        if self.encoder.zooms(parsed) and not isinstance(region, torch.Tensor):
            # decoded once; each category's close-up cut from the photo at full resolution
            shared = region if isinstance(region, Photo) else Photo(self.encoder.decoded(region))
            vectors = self._embed([shared] * len(parsed), parsed)  # (C, D)
        else:
            pixels = self._pixels([region])  # (1, 3, R, R), decoded once
            vectors = self._forward(pixels.expand(len(parsed), -1, -1, -1), parsed)  # (C, D)
        by_category = filter_by_category and self._has_field("category")
        if filter_by_category and not by_category:
            log.warning("the index has no 'category' field; shop-the-look results are unfiltered")
        filters = [
            {**(filter or {}), "category": c.value} if by_category else filter for c in parsed
        ]
        asked = [self._asked_category(c) for c in parsed]
        hits = self._search_vectors(vectors, k, filters, self.score_floor, asked)
        return {c.value: h for c, h in zip(parsed, hits)}

    def more_like_this(
        self, product_id: str, *, k: int = 10, filter: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """Products nearest to a catalog product (its stored vector), the product excluded."""
        k = self._check_k(k)
        try:
            with self._reading():
                vector = self.index.get([product_id]).vectors  # (1, D)
        except UnknownIdError:
            raise UnknownProductError(product_id) from None
        hits = self._search_vectors(vector, k + 1, [filter])[0]
        return [h for h in hits if h.id != product_id][:k]

    def attention(
        self,
        image: Any,
        *,
        category: str | None = None,
        text: str | None = None,
        box: Any = None,
    ) -> np.ndarray:
        """Where the model looked: the class token's attention over the patches in the last
        block, (g, g) float32 summing to 1, for the same condition as :meth:`search` (for a
        hybrid grouping k × k trunk cells per token, at the trunk map's (g·k, g·k); see
        :meth:`referred.CondViT.attention_map`). With ``box`` the map covers the box's crop
        (padded to a square as every query is)."""
        cond = self.encoder.parse(category, text)
        region = [self._region(image, box)]
        if self.encoder.zooms([cond]) and not isinstance(image, torch.Tensor):
            pixels = self.encoder.scene_pixels(region)  # at the locator's own resolution
        else:
            pixels = self._pixels(region)
        amap = self.encoder.attention_map(pixels, [cond])  # (1, g, g)
        out = amap[0].float().cpu().numpy().astype(np.float64)
        return (out / out.sum()).astype(np.float32)

    def warm_up(self) -> None:
        """One forward per kind of condition the model takes, on a blank image: loads the
        sentence encoder of a text model and remembers the category choices' vectors, so the
        first shopper does not wait for them (~8 s for sentence-transformers)."""
        from PIL import Image

        conds = [NONE] + [self.encoder.parse(category=c) for c in self.category_choices]
        self._embed([Image.new("RGB", (8, 8), "white")] * len(conds), conds)
        if self.accepts_text:  # free texts need it even when the choices' vectors were saved
            self.encoder.text_encoder()

    def product(self, product_id: str) -> dict[str, Any]:
        """The stored metadata of a product (with its ``id``); UnknownProductError if absent."""
        try:
            with self._reading():
                return dict(self.index.get([product_id], vectors=False).metadata[0])
        except UnknownIdError:
            raise UnknownProductError(product_id) from None

    def embed(self, image: Any, *, category: str | None = None, text: str | None = None) -> Any:
        """The L2-normalised query embedding, (D,) float32."""
        cond = self.encoder.parse(category, text)
        return self._embed([image], [cond])[0]

    # ------------------------------------------------------------------- catalog writes

    def upsert_product(
        self, product_id: str, image: Any, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Embed a product photo unconditioned and add it (or replace it: vector and metadata).

        The forward runs outside the index lock (searches go on meanwhile); only the index
        change itself is exclusive.
        """
        pixels = self._pixels([image])
        vector = self._forward(pixels, [NONE])  # (1, D)
        meta = None if metadata is None else [dict(metadata)]
        with self._changing, self._rw.write():
            self.index.upsert([product_id], vector, meta)

    def delete_product(self, product_id: str) -> None:
        """Remove a product; UnknownProductError if it is not in the index."""
        try:
            with self._changing, self._rw.write():
                self.index.delete([product_id])
        except UnknownIdError:
            raise UnknownProductError(product_id) from None

    def save_index(self, path: str | Path) -> None:
        """Save the index atomically. Searches go on meanwhile; catalog writes and other saves
        wait (two saves renaming the same directory would collide), queued apart from the
        searches so that a long save never holds a search back."""
        with self._changing, self._rw.read():
            self.index.save(path)

    # ------------------------------------------------------------------------- helpers

    def _reading(self) -> Any:
        """Shared access for thread-safe backends, exclusive for the others."""
        return self._rw.read() if self._shared_reads else self._rw.write()

    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.max_k:
            raise QueryError(f"k must be an int from 1 to {self.max_k}, got {k!r}")
        return int(k)

    def _has_field(self, name: str) -> bool:
        with self._reading():
            return name in self.index.fields

    def _feedback_ids(self, *groups: Any) -> list[list[str]]:
        """Each of ``positive_ids``, ``negative_ids``, ``exclude_ids`` as a list of unique
        str ids, together at most :data:`~referred.feedback.MAX_FEEDBACK_IDS`."""
        out = []
        for name, ids in zip(("positive_ids", "negative_ids", "exclude_ids"), groups):
            if ids is None:
                ids = ()
            if (
                isinstance(ids, (str, bytes))
                or not isinstance(ids, Iterable)
                or not all(isinstance(i, str) and i for i in ids)
            ):
                raise QueryError(f"{name} must be a list of product ids (non-empty strings)")
            out.append(list(dict.fromkeys(ids)))
        if sum(len(g) for g in out) > MAX_FEEDBACK_IDS:
            raise QueryError(
                f"at most {MAX_FEEDBACK_IDS} product ids may be marked in one query "
                f"(positive, negative and excluded together), got {sum(len(g) for g in out)}"
            )
        both = set(out[0]) & set(out[1])
        if both:
            raise QueryError(f"{sorted(both)[0]!r} is marked both positive and negative")
        return out

    def _category_names(self, names: Any, field: str) -> set[str]:
        """Category names as the model spells them (matched as ``category`` is)."""
        if names is None:
            return set()
        if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
            raise QueryError(f"{field} must be a list of category names")
        return {canonical_category(n, self.category_choices) for n in names}

    def _search_excluding(
        self,
        vector: np.ndarray,
        k: int,
        filter: Mapping[str, Any] | None,
        ids: set[str],
        categories: set[str],
        terms: Sequence[str] = (),
        weak: tuple[float | None, str | None] = (None, None),
    ) -> list[Hit]:
        """The k best hits of one (D,) vector, leaving out ``ids``, products of
        ``categories`` and products whose text mentions ``terms``: fetches more (×4 a round)
        until k are left or the catalog is spent. ``weak``: (floor, asked category) for
        :meth:`_search_vectors`."""
        fetch = k + len(ids)
        while True:
            hits = self._search_vectors(vector[None, :], fetch, [filter], weak[0], [weak[1]])[0]
            kept = [
                h
                for h in hits
                if h.id not in ids
                and h.metadata.get("category") not in categories
                and not mentions(h.metadata, terms)
            ]
            if len(kept) >= k or len(hits) < fetch or not (categories or terms):
                return kept[:k]
            fetch *= 4

    def _modification(self, modify: Any) -> str | None:
        """The checked modification text (None when not asked); a model without a Combiner
        refuses one."""
        if modify is None:
            return None
        if self.composer is None:
            raise no_combiner_error()
        return check_modification(modify)

    def _query_of(self, image: Any, cond: Condition, box: Any) -> np.ndarray:
        """The (D,) query of one photo, or of several (a list or tuple of photos of the same
        item: the normalised mean of their queries, each under the same condition and box)."""
        photos = list(image) if isinstance(image, (list, tuple)) else [image]
        if not photos or len(photos) > MAX_QUERY_IMAGES:
            raise QueryError(
                f"a search takes one photo or a list of 1 to {MAX_QUERY_IMAGES}, got {len(photos)}"
            )
        vectors = self._embed([self._region(p, box) for p in photos], [cond] * len(photos))
        mean = vectors.astype(np.float64).mean(axis=0)
        return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)

    def _like_vector(self, like: Any, image: Any, cond: Condition, box: Any) -> np.ndarray:
        """The stored (D,) vector of product ``like``, which replaces the photo."""
        if not isinstance(like, str) or not like:
            raise QueryError(f"like must be a product id (a non-empty string), got {like!r}")
        if image is not None or cond.kind != "none" or box is not None:
            raise QueryError("like= starts from a catalog product: give no photo, condition or box")
        return self._stored_vectors([like])[0]

    def _stored_vectors(self, ids: list[str]) -> np.ndarray:
        """The index's vectors of ``ids`` (n, D); an unknown id is an UnknownProductError."""
        if not ids:
            return np.zeros((0, 0), np.float32)
        try:
            with self._reading():
                return np.asarray(self.index.get(ids).vectors, np.float32)
        except UnknownIdError as exc:
            missing = getattr(exc, "missing", None) or ids
            raise UnknownProductError(str(next(iter(missing)))) from None

    def _region(self, image: Any, box: Any) -> Any:
        """``image`` itself, or its crop to ``box`` (decoded as the model decodes)."""
        if box is None:
            return image
        if isinstance(image, torch.Tensor):
            raise QueryError("a box needs the photo itself (path, bytes or PIL image), not pixels")
        return crop_source(image, box, self._config.preprocess.decode)

    def _pixels(self, images: Sequence[Any]) -> torch.Tensor:
        """Decode and preprocess (no lock: PIL releases the GIL) → (B, 3, R, R) float32."""
        return self.encoder.pixels(images)

    def _forward(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> np.ndarray:
        """One forward of (B, 3, R, R) pixels with B conditions of one kind → (B, D) unit rows."""
        return self.encoder.forward(pixels, conds).numpy()

    def _embed(self, images: Sequence[Any], conds: Sequence[Condition]) -> np.ndarray:
        """Embed images with their conditions: one forward per kind and per ``batch_size``."""
        return self.encoder.encode(list(images), list(conds)).numpy()

    def _search_vectors(
        self,
        vectors: np.ndarray,
        k: int,
        filters: Sequence[Mapping[str, Any] | None],
        floor: float | None = None,
        asked: Sequence[str | None] | None = None,
    ) -> list[list[Hit]]:
        """Index search for (n, D) vectors, one filter per row; identical filters share a call.
        Hits scoring under ``floor``, or whose category is not row i's ``asked[i]``, are weak.

        Search and metadata lookup happen under one read lock, so a concurrent write can
        never leave a hit without its metadata.
        """
        groups: dict[int, list[int]] = {}
        keyed: dict[int, Mapping[str, Any] | None] = {}
        for i, flt in enumerate(filters):
            key = next((g for g, f in keyed.items() if f == flt), len(keyed))
            keyed.setdefault(key, flt)
            groups.setdefault(key, []).append(i)
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), k), PAD_ID, dtype=object)
        with self._reading():
            for key, rows in groups.items():
                try:
                    res: SearchResult = self.index.search(
                        vectors[rows], k, filter=keyed[key] or None
                    )
                except EmptyIndexError:  # every product deleted: no hits, not a failure
                    continue
                scores[rows], ids[rows] = res.scores, res.ids
            meta = self._metadata(list(dict.fromkeys(i for i in ids.ravel() if i != PAD_ID)))
        asked = [None] * len(vectors) if asked is None else asked
        return [
            [
                Hit(
                    i,
                    float(s),
                    {k: v for k, v in meta[i].items() if k != "id"},
                    weak=(floor is not None and s < floor) or _other_kind(meta[i], want),
                )
                for s, i in zip(row_s.tolist(), row_i.tolist())
                if i in meta
            ]
            for row_s, row_i, want in zip(scores, ids, asked)
        ]

    def _asked_category(self, cond: Condition) -> str | None:
        """The category a condition asks for: a category, or a text that is a category's
        name (a text model's chip); None for free text and no condition."""
        return cond.value if cond.value in self.category_choices else None

    def _metadata(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """id → metadata (call under the read lock). Ids that another client of a shared
        Milvus collection deleted since the search are left out."""
        while ids:
            try:
                records = self.index.get(ids, vectors=False)
            except UnknownIdError as exc:
                gone = set(exc.missing)
                ids = [i for i in ids if i not in gone]
                continue
            return dict(zip(records.ids, records.metadata))
        return {}


def _other_kind(metadata: Mapping[str, Any], asked: str | None) -> bool:
    """Whether a product's catalog category is known and is not the category asked for."""
    found = metadata.get("category")
    if asked is None or not isinstance(found, str) or not found.strip():
        return False
    return found.strip().casefold() != asked.casefold()
