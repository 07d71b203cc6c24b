"""Errors a caller of the :class:`~referred.search.Searcher` can cause.

Each derives from :class:`SearchError` and from the builtin that fits (``ValueError`` for bad
arguments, ``KeyError`` for unknown products), so a web layer maps them to 4xx answers with one
``except USER_ERRORS`` clause and the message as the detail.
"""

from __future__ import annotations

from collections.abc import Iterable

from referred.imageio import ImageDecodeError
from referred.index.errors import IndexUsageError


class SearchError(Exception):
    """Base class of the errors raised by the Searcher for bad requests."""


class QueryError(SearchError, ValueError):
    """A bad argument: k out of range, images and conditions that do not pair up, …"""


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


class IndexMismatchError(SearchError, ValueError):
    """A model whose embeddings do not fit the index (different dimension)."""


class UnknownProductError(SearchError, KeyError):
    """A product id that is not in the index; ``str()`` is the plain message."""

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        super().__init__(f"unknown product id {product_id!r}: it is not in the index")

    def __str__(self) -> str:
        return str(self.args[0])


#: Every error a request can cause (map to 4xx): the Searcher's, the index's (bad filter,
#: unknown filter field) and undecodable images.
USER_ERRORS: tuple[type[Exception], ...] = (SearchError, IndexUsageError, ImageDecodeError)
