"""The one path from (images, conditions) to L2-normalised vectors.

Every caller — the Searcher, ``referred embed``, the catalog build and its Ray actors, the
benchmark, training validation, the demo and the CLI — goes through a :class:`QueryEncoder`,
so a condition means the same thing everywhere and the same image and condition give the same
vector everywhere. The rules, in one place:

* a **condition** is nothing (the image alone), a **category** or a **text**, never two;
* a category is a name of the model's table, matched ignoring case, surrounding space and
  ``_``/``-`` versus space (``lower_body`` = ``Lower Body``), or an int index into it. A
  text-only model has no table: it takes LRVS-F's names (:data:`LRVSF_CATEGORIES`, its
  :attr:`QueryEncoder.category_choices`) and receives them as texts, as it was trained. A name
  outside the choices is an :class:`UnknownCategoryError` listing them, on every model;
* a text is a non-empty str of at most :data:`MAX_TEXT_CHARS` characters (stripped); a
  category-only model refuses texts (:class:`UnsupportedConditionError`);
* a bare str given where either is allowed (``search_many``, ``encode_queries``) is a category
  when it names one of the choices, else a text;
* a model with a **locator** (:mod:`referred.zoom`) embeds a conditioned query as the close-up
  of the item the locator finds: cut from the photo at full resolution when given photos, from
  the preprocessed square when given pixels; unconditioned queries are never zoomed.

Vectors come from the model's fast CPU forward where it applies
(:func:`referred.model.fast.inference_model`), one forward per kind of condition and per
``batch_size`` images, and are L2-normalised float32.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from referred.categories import LRVSF_CATEGORIES, category_index
from referred.imageio import ImageDecodeError, Photo
from referred.preprocess import preprocess_image
from referred.slots import ForwardSlots
from referred.zoom.boxes import GROW
from referred.zoom.views import Views

Kind = Literal["none", "category", "text"]
KINDS: tuple[Kind, ...] = ("none", "category", "text")
#: Longest free text accepted, in characters (sentence encoders truncate far earlier).
MAX_TEXT_CHARS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls
#: Text condition vectors remembered per encoder (category chips of a text model, repeats).
TEXT_MEMO_ITEMS = 4096


class SearchError(Exception):
    """Base class of the errors a query or a search request can cause."""


class QueryError(SearchError, ValueError):
    """A bad argument: a malformed condition, images and conditions that do not pair up, …"""


class UnknownCategoryError(QueryError):
    """A category the model does not know; the message lists the valid ones."""

    def __init__(self, category: object, valid: Iterable[str]) -> None:
        self.category = category
        self.valid = tuple(valid)
        super().__init__(
            f"unknown category {category!r}; this model accepts: {', '.join(self.valid)}"
        )


class UnsupportedConditionError(QueryError):
    """A condition the model cannot take (text on a category-only model, both at once, …)."""


class EmptyTextError(QueryError):
    """A text condition with nothing in it but spaces or control characters."""


class TextTooLongError(QueryError):
    """A text condition over :data:`MAX_TEXT_CHARS` characters (or a caller's lower limit)."""


@dataclass(frozen=True)
class Condition:
    """``kind`` "none" (value None), "category" (the table's own spelling) or "text"."""

    kind: Kind
    value: str | None = None


NONE = Condition("none")


# -- parsing: pure functions of the model's config ---------------------------------------------
def category_choices(config: Any) -> tuple[str, ...]:
    """What a user can pick as a category: the model's table, or LRVS-F's names for a text-only
    model (sent as texts), or nothing for an unconditioned or vector-only model."""
    if config.categories:
        return tuple(config.categories)
    return LRVSF_CATEGORIES if config.cond_dim is not None else ()


def parse(
    config: Any, category: Any = None, text: Any = None, max_text_chars: int = MAX_TEXT_CHARS
) -> Condition:
    """The condition for ``category`` or ``text`` (at most one), checked against ``config``.
    ``max_text_chars`` may lower the text limit (a service's setting), never raise it."""
    if category is not None and text is not None:
        raise UnsupportedConditionError("give a category or a text, not both")
    if category is None and text is None:
        return NONE
    if not config.conditional:
        raise UnsupportedConditionError(
            "this model takes no condition; search with the image alone"
        )
    if category is not None:
        return _category(config, category)
    if config.cond_dim is None:
        raise UnsupportedConditionError(
            "this model is conditioned on categories only; free text is not accepted. "
            f"Valid categories: {', '.join(config.categories)}"
        )
    return Condition("text", checked_text(text, min(max_text_chars, MAX_TEXT_CHARS)))


def coerce(config: Any, cond: Any) -> Condition:
    """One condition given loosely: None, a :class:`Condition`, a mapping with one of
    ``category``/``text``, an int (a category index) or a str (a category when it names one of
    :func:`category_choices`, else a text)."""
    if cond is None:
        return NONE
    if isinstance(cond, Condition):
        return cond
    if isinstance(cond, Mapping):
        unknown = set(cond) - {"category", "text"}
        if unknown:
            raise QueryError(f"a condition takes 'category' or 'text', got keys {sorted(unknown)}")
        return parse(config, cond.get("category"), cond.get("text"))
    if isinstance(cond, (int, np.integer)) and not isinstance(cond, bool):
        return parse(config, category=int(cond))
    if isinstance(cond, str):
        names = category_choices(config)
        if _find(cond, names) is not None or config.cond_dim is None:
            return parse(config, category=cond)
        return parse(config, text=cond)
    raise QueryError(
        "a condition must be None, a category name or index, a text, or "
        f"{{'category'|'text': value}}; got {cond!r}"
    )


def _find(name: str, names: Sequence[str]) -> int | None:
    try:
        return category_index(name, tuple(names))
    except ValueError:
        return None


def canonical_category(category: Any, names: Sequence[str]) -> str:
    """The spelling in ``names`` of ``category`` (a name, matched loosely, or an index);
    :class:`UnknownCategoryError` listing ``names`` otherwise."""
    if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
        if not 0 <= int(category) < len(names):
            raise UnknownCategoryError(category, names)
        i: int | None = int(category)
    elif isinstance(category, str):
        i = _find(category, names)
    else:
        raise QueryError(f"a category must be a name (str) or an index (int), got {category!r}")
    if i is None:
        raise UnknownCategoryError(category, names)
    return names[i]


def _category(config: Any, category: Any) -> Condition:
    name = canonical_category(category, category_choices(config))
    return Condition("category" if config.categories else "text", name)


def checked_text(text: Any, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Control characters become spaces, then the text is stripped and bounded."""
    if not isinstance(text, str):
        raise QueryError(f"a text condition must be a non-empty str, got {text!r}")
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise EmptyTextError("a text condition must be a non-empty str; describe the item")
    if len(text) > max_chars:
        raise TextTooLongError(f"text condition of {len(text)} characters; at most {max_chars}")
    return text


# -- the encoder --------------------------------------------------------------------------------
class QueryEncoder:
    """Images and conditions → L2-normalised vectors with one model; thread-safe.

    ``fast``: run the fast CPU forward (same vectors to ~1e-6; weights are snapshotted, so
    build a new encoder after changing the model). ``text_encoder``: a callable list[str] →
    (B, cond_dim) to use instead of the model's own sentence encoder. ``zoom``: when the model
    has a locator (:mod:`referred.zoom`), embed each conditioned query as the close-up of the
    item the locator finds (False: the whole photo, as a model without one does), as the
    pooled vector of the close-ups ``zoom_views`` names (:class:`referred.zoom.views.Views`;
    default: the views saved with the locator).
    """

    def __init__(
        self,
        model: Any,
        *,
        fast: bool = True,
        batch_size: int = 32,
        text_encoder: Any = None,
        zoom: bool = True,
        zoom_views: Any = None,
    ) -> None:
        from referred.model.fast import FastCondViT, inference_model

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(model, FastCondViT):  # already the fast twin: use it, keep its CondViT
            self.model, self.net = model.model, model
        else:
            self.model, self.net = model, inference_model(model, fast)
        self.config = model.config
        self.batch_size = int(batch_size)
        self.category_choices = category_choices(self.config)
        self._text_encoder = text_encoder
        self._memo: Any = None
        self.locator = getattr(model, "locator", None) if zoom else None
        if zoom_views is not None and not isinstance(zoom_views, Views):
            raise TypeError(f"zoom_views must be a referred.zoom.views.Views, got {zoom_views!r}")
        self.zoom_views = zoom_views or getattr(model, "zoom_views", None) or Views((GROW,))
        own = getattr(self.net, "threads", None)  # a fast twin may run on its own thread count
        # forwards at once: as many as the cores hold
        self._slots = ForwardSlots(threads_per_forward=(lambda: own) if own else None)
        self._texts = threading.Lock()  # the text memo's state

    # conditions
    def parse(self, category: Any = None, text: Any = None) -> Condition:
        return parse(self.config, category, text)

    def conditions(self, conds: Any, n: int) -> list[Condition]:
        """``n`` conditions from None (all unconditioned), one condition for all, or a list."""
        if conds is None:
            return [NONE] * n
        if isinstance(conds, (str, Mapping, Condition, int, np.integer)):
            conds = [conds] * n
        conds = list(conds)
        if len(conds) != n:
            raise QueryError(f"{n} images but {len(conds)} conditions")
        return [coerce(self.config, c) for c in conds]

    def text_encoder(self) -> Any:
        """The sentence encoder (the given one, else the model's own, loaded on first use)."""
        if self._text_encoder is None:
            from referred.model.encoding import text_encoder

            self._text_encoder = text_encoder(self.model)
        return self._text_encoder

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Condition vectors of texts (B, cond_dim), remembered across calls. Vectors saved
        with the model (its category choices) are known from the start: category queries of
        a text model never load the sentence encoder."""
        with self._texts:  # the memo is not thread-safe; a new text's encoding is short
            if self._memo is None:
                from referred.model.text import TextMemo

                given = self._text_encoder
                if isinstance(given, TextMemo):  # already remembering: not twice
                    self._memo = given
                else:
                    self._memo = TextMemo(lambda t: self.text_encoder()(t), TEXT_MEMO_ITEMS)
                if given is None:  # saved vectors come from the model's own encoder
                    self._memo.seed(getattr(self.model, "known_texts", None) or {})
            return self._memo(texts)

    def condition_tensor(self, conds: Sequence[Condition]) -> torch.Tensor | None:
        """Conditions of one kind → None, a LongTensor (B,) or a FloatTensor (B, cond_dim)."""
        kinds = {c.kind for c in conds}
        if len(kinds) != 1:
            raise ValueError(f"conditions of one kind per forward, got {sorted(kinds)}")
        kind = kinds.pop()
        if kind == "none":
            return None
        if kind == "category":
            return torch.tensor([self.config.categories.index(c.value) for c in conds])
        vectors = self.encode_text([str(c.value) for c in conds])
        return torch.as_tensor(vectors, dtype=torch.float32).reshape(len(conds), -1)

    # images
    def pixels(self, images: Sequence[Any], size: int | None = None) -> torch.Tensor:
        """Decode and preprocess with the model's settings → (B, 3, R, R) float32; ``size``:
        at this resolution instead of the model's."""
        cfg = self.config.preprocess
        if size is not None and size != cfg.size:
            cfg = replace(cfg, size=int(size))
        arrays = []
        for image in images:
            try:
                arrays.append(preprocess_image(image, cfg))
            except TypeError as exc:
                raise ImageDecodeError(str(exc)) from None
        return torch.from_numpy(np.stack(arrays))

    def forward(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        """One forward of pixels (B, 3, R, R) with B conditions of one kind → (B, D) unit rows,
        float32 on the CPU. A zooming encoder first cuts the close-ups out of the pixels."""
        if self.zooms(conds):
            views = self.zoom_views.cut_pixels(pixels, self.locate(pixels, conds))
            return self._pooled(views.flatten(0, 1), conds)
        return self._embed_pixels(pixels, conds)

    def _pooled(self, close: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        """Close-ups (V·B, 3, R, R), view-major, of B queries → (B, D): their views pooled
        (:func:`referred.zoom.views.pool`)."""
        from referred.zoom.views import pool

        n = self.zoom_views.count
        emb = self._embed_pixels(close, list(conds) * n)
        return pool(emb.reshape(n, len(conds), -1))

    def _embed_pixels(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        with self._slots, torch.inference_mode():
            emb = self.net(*self._inputs(pixels, conds))  # (B, D)
            return F.normalize(emb.float(), dim=-1).cpu()

    # zoom (referred.zoom)
    @property
    def scene_size(self) -> int:
        """The resolution the locator reads a scene at (its own, else the model's)."""
        own = getattr(self.locator, "scene_size", None)
        return int(own) if own else self.config.preprocess.size

    def scene_pixels(self, images: Sequence[Any]) -> torch.Tensor:
        """Photos preprocessed for the locator: at :attr:`scene_size`."""
        return self.pixels(images, self.scene_size)

    def zooms(self, conds: Sequence[Condition]) -> bool:
        """Whether these conditions' queries are embedded as close-ups."""
        return self.locator is not None and bool(conds) and conds[0].kind != "none"

    def locate(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        """The asked items' boxes (B, 4), ``(cx, cy, w, h)`` fractions of each padded square;
        the model must have a locator and the conditions must not be none. Pixels of another
        size than :attr:`scene_size` are resized to it (bilinear; :meth:`scene_pixels` of the
        photos is sharper)."""
        return self._locator_outputs(pixels, conds)[1]

    def _locator_outputs(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> tuple:
        if self.locator is None:
            raise UnsupportedConditionError("this model has no locator")
        if not conds or any(c.kind == "none" for c in conds):
            raise QueryError("locating an item needs a category or a text for the item asked")
        from referred.presence import presence_features

        with self._slots, torch.inference_mode():
            c = self.condition_tensor(conds)
            tokens = self.model.condition_token(c.to(self.model.device)).float()  # (B, W)
            size = self.scene_size
            if pixels.shape[-1] != size:
                pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
            features = presence_features(self.model, pixels.to(self.model.device))
            return self.locator(features.cpu(), tokens.cpu())  # the locator: CPU

    def attention_map(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        """Where the model looked → (B, g, g): for a zooming encoder, where its locator found
        the asked item (the heat map inside the predicted box, 4 × the locator's grid:
        :func:`referred.zoom.overlay.located_map`); otherwise the last block's class-token
        attention."""
        if self.zooms(conds):
            from referred.zoom.overlay import located_map

            return located_map(*self._locator_outputs(pixels, conds))
        with self._slots, torch.inference_mode():
            return self.model.attention_map(*self._inputs(pixels, conds))

    @property
    def presence_head(self) -> Any:
        """The model's presence head (:mod:`referred.presence`), or None."""
        return getattr(self.model, "presence_head", None)

    def presence(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> torch.Tensor:
        """Calibrated probabilities (B, K) that an item of each of the K conditions (one kind,
        not none) is worn in each of the B images; the model must have a presence head."""
        head = self.presence_head
        if head is None:
            raise UnsupportedConditionError("this model has no presence head")
        if not conds or any(c.kind == "none" for c in conds):
            raise QueryError("presence needs a category or a text for the item asked")
        from referred.presence import presence_features

        with self._slots, torch.inference_mode():
            c = self.condition_tensor(conds)
            tokens = self.model.condition_token(c.to(self.model.device)).float()  # (K, W)
            features = presence_features(self.model, pixels.to(self.model.device))  # (B, N, C)
            return head.probability(features.cpu(), tokens.cpu()).float()  # the head: CPU

    def _inputs(self, pixels: torch.Tensor, conds: Sequence[Condition]) -> tuple:
        """(pixels, condition tensor or None) on the model's device."""
        c = self.condition_tensor(conds)
        device = self.model.device
        return pixels.to(device), None if c is None else c.to(device)

    def encode(self, images: Any, conds: Any = None) -> torch.Tensor:
        """Images (paths, bytes, PIL images, or a pixel tensor (B, 3, R, R)) with their
        conditions (see :meth:`conditions`) → (B, D) L2-normalised float32 on the CPU."""
        if isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
            images = [images]
        n = len(images)
        parsed = self.conditions(conds, n)
        out = torch.empty(n, self.config.output_dim)
        for kind in KINDS:
            rows = [i for i, c in enumerate(parsed) if c.kind == kind]
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                conds_chunk = [parsed[i] for i in chunk]
                if isinstance(images, torch.Tensor):
                    out[chunk] = self.forward(images[chunk], conds_chunk)
                elif self.zooms(conds_chunk):
                    out[chunk] = self._zoomed([images[i] for i in chunk], conds_chunk)
                else:
                    out[chunk] = self.forward(self.pixels([images[i] for i in chunk]), conds_chunk)
        return out

    def decoded(self, image: Any) -> Any:
        """A photo decoded as the model decodes (PIL RGB)."""
        from referred.imageio import decode_image

        try:
            return decode_image(image, self.config.preprocess.decode)
        except TypeError as exc:
            raise ImageDecodeError(str(exc)) from None

    def _zoomed(self, images: list[Any], conds: Sequence[Condition]) -> torch.Tensor:
        """Photos → their close-ups' vectors, cut from the photos at full resolution (each
        decoded once: a :class:`~referred.imageio.Photo`, as the caller's own are)."""
        photos = [x if isinstance(x, Photo) else Photo(self.decoded(x)) for x in images]
        boxes = self.locate(self.scene_pixels(photos), conds)
        cuts = [self.zoom_views.cut(self.decoded(p), b) for p, b in zip(photos, boxes.tolist())]
        close = [cut[v] for v in range(self.zoom_views.count) for cut in cuts]  # view-major
        return self._pooled(self.pixels(close), conds)

    # the LRVSF-Benchmark interface
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights (what identifies this encoder's vectors, e.g. in caches)."""
        return self.model.state_dict()

    def encode_queries(self, images: Any, conds: Any) -> torch.Tensor:
        """Conditioned scenes → (B, D) L2-normalised."""
        return self.encode(images, conds)

    def encode_targets(self, images: Any) -> torch.Tensor:
        """Products, unconditioned → (B, D) L2-normalised."""
        return self.encode(images, None)
