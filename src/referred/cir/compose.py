"""Composing at query time: a query vector and a modification text → a new query vector.

:class:`Composer` wraps a model's :class:`~referred.cir.io.CIRHead` with its sentence
encoder (loaded on first use, texts remembered) and a lock, so a Searcher shared by threads
composes safely. :func:`check_modification` is the one rule for what a modification may be.
Only a request that gives a modification is composed: without one the query vector is the
model's own, unchanged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from referred.cir.io import CIRHead
from referred.query import EmptyTextError, QueryError, TextTooLongError, UnsupportedConditionError

#: Longest modification accepted, in characters ("in red" … two annotators' sentences).
MAX_MODIFY_CHARS = 300
#: Modification vectors remembered.
MEMO_ITEMS = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_modification(text: Any, max_chars: int = MAX_MODIFY_CHARS) -> str:
    """The modification, control characters made spaces and stripped; a :class:`QueryError`
    subclass naming what is accepted otherwise."""
    if not isinstance(text, str):
        raise QueryError(
            f"modify must be a text such as 'in red' or 'same but striped', got {text!r}"
        )
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise EmptyTextError(
            "modify is empty; say what to change, e.g. 'in red', 'same but striped', 'longer'"
        )
    if len(text) > max_chars:
        raise TextTooLongError(
            f"modify has {len(text)} characters; at most {max_chars} are accepted (say the "
            "change in a few words, e.g. 'in red with long sleeves')"
        )
    return text


def no_combiner_error() -> UnsupportedConditionError:
    """The error of a modification asked of a model without a Combiner."""
    return UnsupportedConditionError(
        "this model has no Combiner, so it cannot compose a modification ('modify'); search "
        "without modify, or use a model trained with `referred train --task cir` (its folder "
        "holds combiner.safetensors), e.g. the bundled demo model"
    )


class Composer:
    """``head``'s Combiner with its text encoder; ``text_encoder`` is a factory returning a
    callable list[str] → (B, T) tensor, called once, on first use."""

    def __init__(self, head: CIRHead, text_encoder: Callable[[], Any]) -> None:
        from referred.model.text import TextMemo

        self.head = head
        self._factory = text_encoder
        self._memo = TextMemo(lambda texts: self._encoder()(texts), MEMO_ITEMS)
        self._loaded: Any = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: Any, query_encoder: Any = None) -> Composer | None:
        """The Composer of ``model``'s head (None without one). Its sentence encoder is the
        ``query_encoder``'s (a :class:`~referred.query.QueryEncoder`) when the head was
        trained with the model's own, else loaded by the name the head records."""
        head = getattr(model, "cir_head", None)
        if head is None:
            return None
        text_encoder: Callable[[], Any] | None = None
        if query_encoder is not None and head.text_encoder == model.config.text_encoder:
            text_encoder = query_encoder.text_encoder
        if text_encoder is None:
            from referred.model.text import load_text_encoder

            def text_encoder() -> Any:
                return load_text_encoder(head.text_encoder or None)

        return cls(head, text_encoder)

    def _encoder(self) -> Any:
        if self._loaded is None:
            self._loaded = self._factory()
        return self._loaded

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentence embeddings (B, T) of ``texts`` (checked with :func:`check_modification`)."""
        checked = [check_modification(t) for t in texts]
        with self._lock:
            return self._memo(checked)

    def __call__(self, vectors: Any, texts: Sequence[str]) -> np.ndarray:
        """Query vectors (B, D) and one modification each → (B, D) unit float32 rows."""
        q = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        if q.ndim != 2 or len(q) != len(texts):
            raise ValueError(
                f"vectors (B, D) and B texts expected, got {tuple(q.shape)}, {len(texts)}"
            )
        t = self.texts(texts)
        with self._lock, torch.inference_mode():
            out = self.head.net(q, t.to(q.dtype))
        return out.numpy().astype(np.float32, copy=False)
