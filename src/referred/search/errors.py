"""Errors a caller of the :class:`~referred.search.Searcher` can cause.

Each derives from :class:`SearchError` and from the builtin that fits (``ValueError`` for bad
arguments, ``KeyError`` for unknown products). :data:`USER_ERRORS` is the one declared set of
errors a request can cause: a web layer maps exactly these to 4xx answers (the message as the
detail) and treats anything else, ``ValueError`` and ``KeyError`` included, as a bug.
"""

from __future__ import annotations

from referred.imageio import ImageDecodeError
from referred.index.errors import FilterError, MetadataError, UnknownFieldError

# The query errors are raised where conditions are parsed (referred.query, below this layer).
from referred.query import (
    QueryError,
    SearchError,
    UnknownCategoryError,
    UnsupportedConditionError,
)
from referred.region import BoxError

__all__ = [
    "USER_ERRORS",
    "BoxError",
    "IndexMismatchError",
    "QueryError",
    "SearchError",
    "UnknownCategoryError",
    "UnknownProductError",
    "UnsupportedConditionError",
]


class IndexMismatchError(SearchError, ValueError):
    """A model whose embeddings do not fit the index (different dimension). Raised when a
    Searcher is built, never by a request: not a user error."""


class UnknownProductError(SearchError, KeyError):
    """A product id that is not in the index; ``str()`` is the plain message."""

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        super().__init__(f"unknown product id {product_id!r}: it is not in the index")

    def __str__(self) -> str:
        return str(self.args[0])


#: Every error a request can cause (map to 4xx, nothing else): bad queries (category, text,
#: k, …), unknown products, the index's bad filter / unknown filter field / metadata it cannot
#: store, and undecodable images. Not included, because no request causes them: a model that
#: does not fit the index, a corrupt or missing index, a missing optional dependency.
USER_ERRORS: tuple[type[Exception], ...] = (
    QueryError,
    UnknownProductError,
    FilterError,
    UnknownFieldError,
    MetadataError,
    ImageDecodeError,
)
