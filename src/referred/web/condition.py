"""The web layer's one door to condition rules: which category names and texts a request may use.

Every route goes through :func:`resolve_condition`, :func:`resolve_categories` or
:func:`resolve_category`. The rules themselves are :mod:`referred.query`'s, the same for the
library, the CLI and the benchmark (names matched ignoring case, spaces and ``_``/``-``;
control characters in a text become spaces; at most ``max_text_chars``, which may only lower
the library's 1,000); this module adds what only HTTP needs: a search must name an item, and
each problem gets its own error code.
"""

from __future__ import annotations

from typing import Any

from referred.query import (
    EmptyTextError,
    TextTooLongError,
    UnknownCategoryError,
    canonical_category,
    checked_text,
)
from referred.web.forms import split_list_field
from referred.web.schemas import ApiError
from referred.web.settings import Settings


def resolve_condition(
    category: str | None, text: str | None, searcher: Any, settings: Settings
) -> tuple[str | None, str | None]:
    """(category, text) of a search: exactly one of them, validated (422 naming the problem)."""
    category = category if category and category.strip() else None
    if text is not None and category is None:
        return None, _check_text(text, searcher, settings)
    if category is not None and text is not None and text.strip():
        raise ApiError(422, "ambiguous_condition", "give either 'category' or 'text', not both")
    if category is None:
        hint = " or a 'text'" if searcher.accepts_text else ""
        raise ApiError(
            422,
            "missing_condition",
            f"say which item you mean: a 'category' ({', '.join(searcher.category_choices)}){hint}",
        )
    return resolve_category(category, searcher), None


def resolve_category(name: str, searcher: Any) -> str:
    """The canonical spelling of ``name`` (referred.query's rules); 422 listing valid ones."""
    categories = tuple(searcher.category_choices)
    try:
        return canonical_category(name, categories)
    except UnknownCategoryError:
        raise ApiError(
            422,
            "unknown_category",
            f"unknown category {name[:60]!r}; valid categories: {', '.join(categories)}",
        ) from None


def resolve_categories(
    values: list[str] | None, searcher: Any, settings: Settings, name: str = "categories"
) -> list[str] | None:
    """Categories of a list field (``name``): repeated fields, comma-separated or JSON lists;
    None when none are given."""
    raw = split_list_field(values, name, "names", code="invalid_field")
    if not raw:
        return None
    if len(raw) > settings.max_categories:
        raise ApiError(
            422,
            "too_many_categories",
            f"{len(raw)} categories asked; at most {settings.max_categories}",
        )
    return list(dict.fromkeys(resolve_category(x, searcher) for x in raw))


def _check_text(text: str, searcher: Any, settings: Settings) -> str:
    if not searcher.accepts_text:
        raise ApiError(
            422,
            "text_not_supported",
            "this model is conditioned on categories only; send a 'category' instead "
            f"({', '.join(searcher.category_choices)})",
        )
    try:
        return checked_text(text, settings.max_text_chars)
    except EmptyTextError:
        message = "the text condition is empty; describe the item"
        raise ApiError(422, "empty_text", message) from None
    except TextTooLongError:
        raise ApiError(
            422,
            "text_too_long",
            f"the text is {len(text.strip())} characters; the limit is {settings.max_text_chars}",
        ) from None
