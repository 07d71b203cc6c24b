"""Errors raised by :mod:`referred.index`.

Every error a caller can cause derives from :class:`IndexUsageError` and also from the builtin
that fits (``ValueError`` for bad values, ``KeyError`` for unknown ids and fields), so
``except ValueError`` keeps working. Names avoid the builtin ``IndexError`` on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable


class IndexUsageError(Exception):
    """Base class of every error raised by :mod:`referred.index`."""


class SpecError(IndexUsageError, ValueError):
    """An index spec string or backend option that is not accepted."""


class MissingDependencyError(IndexUsageError, ImportError):
    """A backend whose optional dependency is not installed."""


class VectorError(IndexUsageError, ValueError):
    """Vectors of the wrong shape, dtype or dimension, or holding NaN/inf."""


class IdError(IndexUsageError, ValueError):
    """Ids that are not non-empty strings, or that repeat within one call."""


class DuplicateIdError(IdError):
    """``add`` of ids already in the index (use ``upsert`` to replace them)."""


class MetadataError(IndexUsageError, ValueError):
    """Metadata of the wrong length or with values that cannot be stored in a column."""


class FilterError(IndexUsageError, ValueError):
    """A filter that is not a ``{field: value}`` / ``{field: [values]}`` mapping."""


class SearchArgumentError(IndexUsageError, ValueError):
    """A bad ``k`` or queries."""


class EmptyIndexError(IndexUsageError, ValueError):
    """A search on an index that holds no vectors."""


class NotTrainedError(IndexUsageError, ValueError):
    """An index that needs training (IVF, PQ, SQ) was given too few vectors to train on."""


class CorruptIndexError(IndexUsageError, ValueError):
    """A saved index directory that is missing files, truncated or inconsistent."""


class _KeyErrorMessage(IndexUsageError, KeyError):
    """KeyError subclass whose ``str()`` is the plain message (KeyError would repr-quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownIdError(_KeyErrorMessage):
    """Ids asked for (``get``, ``delete``) that are not in the index."""

    def __init__(self, missing: Iterable[str], total: int | None = None) -> None:
        self.missing = list(missing)
        count = total if total is not None else len(self.missing)
        shown = ", ".join(repr(i) for i in self.missing[:5])
        more = f" (and {count - 5} more)" if count > 5 else ""
        super().__init__(f"{count} unknown id(s): {shown}{more}")


class UnknownFieldError(_KeyErrorMessage):
    """A filter on a metadata field that no product has."""

    def __init__(self, field: str, known: Iterable[str]) -> None:
        self.field = field
        self.known = sorted(known)
        listed = ", ".join(repr(f) for f in self.known) or "none (no metadata was added)"
        super().__init__(f"filter on unknown field {field!r}; known fields: {listed}")


class IndexNotFoundError(IndexUsageError, FileNotFoundError):
    """``load_index`` of a path that holds no saved index."""


class TargetExistsError(IndexUsageError, FileExistsError):
    """``save`` to a path that exists and is not a saved index (it is never overwritten)."""
