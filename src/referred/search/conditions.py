"""Query conditions: what the shopper points at, checked against what the model accepts.

A :class:`Condition` is one of: none (the image alone), a category of the model's table, or a
free text. Parsing validates against the model's config so that every mistake a user can make
becomes an :class:`~referred.search.errors.UnknownCategoryError` or
:class:`~referred.search.errors.UnsupportedConditionError` before any forward pass.
Conditions of one kind batch together into one tensor (a forward takes one kind at a time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from referred.categories import category_index
from referred.model.config import ModelConfig
from referred.search.errors import QueryError, UnknownCategoryError, UnsupportedConditionError

Kind = Literal["none", "category", "text"]
#: Longest free text accepted, in characters (sentence encoders truncate far earlier).
MAX_TEXT_CHARS = 1000


@dataclass(frozen=True)
class Condition:
    """``kind`` "none" (value None), "category" (value: the model's own spelling) or "text"."""

    kind: Kind
    value: str | None = None


NONE = Condition("none")


def parse(config: ModelConfig, category: Any = None, text: Any = None) -> Condition:
    """The condition for ``category`` or ``text`` (at most one), checked against ``config``.

    A text-only model has no category table: a category is then sent as its name, as text
    (text-conditioned CondViTs are trained with category names among their captions).
    """
    if category is not None and text is not None:
        raise UnsupportedConditionError("give a category or a text, not both")
    if category is None and text is None:
        return NONE
    if not config.conditional:
        raise UnsupportedConditionError(
            "this model takes no condition; search with the image alone"
        )
    if category is not None:
        if not isinstance(category, str):
            raise QueryError(f"a category must be a str, got {category!r}")
        if config.categories:
            try:
                i = category_index(category, config.categories)
            except ValueError:
                raise UnknownCategoryError(category, config.categories) from None
            return Condition("category", config.categories[i])
        return Condition("text", _checked_text(category))
    if config.cond_dim is None:
        raise UnsupportedConditionError(
            "this model is conditioned on categories only; free text is not accepted. "
            f"Valid categories: {', '.join(config.categories)}"
        )
    return Condition("text", _checked_text(text))


def coerce(config: ModelConfig, cond: Any) -> Condition:
    """One item of ``search_many``'s conditions: None, a :class:`Condition`, a mapping with a
    ``category`` or ``text`` key, or a str (a category when the model knows it, else a text)."""
    if cond is None:
        return NONE
    if isinstance(cond, Condition):
        return cond
    if isinstance(cond, Mapping):
        unknown = set(cond) - {"category", "text"}
        if unknown:
            raise QueryError(f"a condition takes 'category' or 'text', got keys {sorted(unknown)}")
        return parse(config, cond.get("category"), cond.get("text"))
    if isinstance(cond, str):
        known = config.categories and _is_category(cond, config.categories)
        if known or config.cond_dim is None:
            return parse(config, category=cond)
        return parse(config, text=cond)
    raise QueryError(
        f"a condition must be None, a category or text str, or {{'category'|'text': str}}; "
        f"got {cond!r}"
    )


def to_tensor(config: ModelConfig, encode_text: Any, conds: Sequence[Condition]) -> Any:
    """Conditions of one kind → None, a LongTensor (B,) or a FloatTensor (B, cond_dim)."""
    kinds = {c.kind for c in conds}
    if len(kinds) != 1:
        raise ValueError(f"conditions of one kind per forward, got {sorted(kinds)}")
    kind = kinds.pop()
    if kind == "none":
        return None
    if kind == "category":
        idx = [config.categories.index(c.value) for c in conds]
        return torch.tensor(idx, dtype=torch.long)
    vectors = encode_text([c.value for c in conds])
    return torch.as_tensor(vectors, dtype=torch.float32).reshape(len(conds), -1)  # (B, cond_dim)


def _is_category(name: str, categories: Sequence[str]) -> bool:
    try:
        category_index(name, tuple(categories))
    except ValueError:
        return False
    return True


def _checked_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise QueryError(f"a text condition must be a non-empty str, got {text!r}")
    if len(text) > MAX_TEXT_CHARS:
        raise QueryError(f"text condition of {len(text)} characters; at most {MAX_TEXT_CHARS}")
    return text.strip()
