"""The index protocol, its result types, and the input checks every backend shares.

All checks run before an index is touched, so a rejected call leaves the index unchanged.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Union, runtime_checkable

import numpy as np

from referred.index.errors import IdError, SearchArgumentError, VectorError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

#: Filter: ``{"category": "Bags"}`` (equality) or ``{"category": ["Bags", "Feet"]}``
#: (membership); several fields are ANDed.
Filter = Mapping[str, Any]
#: Per-product metadata: one mapping per id, a pandas DataFrame or a pyarrow Table (n rows).
Metadata = Union[Sequence[Mapping[str, Any]], "pd.DataFrame", "pa.Table"]
PathLike = Union[str, "os.PathLike[str]"]

#: Id used to pad result rows when fewer than k products match.
PAD_ID = ""


class SearchResult(NamedTuple):
    """Top-k results, best first; unpacks as ``scores, ids = index.search(...)``.

    scores: (n_queries, k) float32 inner products, ``-inf`` where fewer than k products matched.
    ids: (n_queries, k) object array of the caller's str ids, ``""`` where padded.
    """

    scores: np.ndarray
    ids: np.ndarray


class Records(NamedTuple):
    """What ``get`` returns, in the order the ids were asked for.

    ids: list of the m ids asked for.
    vectors: (m, dim) float32, or None when ``get(..., vectors=False)``.
    metadata: m dicts holding ``id`` and every non-null metadata field.
    """

    ids: list[str]
    vectors: np.ndarray | None
    metadata: list[dict[str, Any]]


@runtime_checkable
class VectorIndex(Protocol):
    """What every backend offers; build one with :func:`referred.index.create_index`."""

    spec: str
    dim: int
    #: Free JSON-serialisable notes kept in the saved manifest (e.g. the model that built it).
    info: dict[str, Any]

    def __len__(self) -> int: ...
    def __contains__(self, id_: object) -> bool: ...

    @property
    def fields(self) -> tuple[str, ...]:
        """Metadata field names that filters may use."""
        ...

    @property
    def is_trained(self) -> bool: ...

    def train(self, vectors: np.ndarray) -> None:
        """Train on (n, dim) float32 vectors; a no-op for backends that need no training."""
        ...

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        """Insert new products; any id already present raises DuplicateIdError."""
        ...

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        """Insert or replace products (vector and metadata are both replaced)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove products; any unknown id raises UnknownIdError and nothing is removed."""
        ...

    def search(self, queries: np.ndarray, k: int, filter: Filter | None = None) -> SearchResult:
        """Top-k by inner product for (n_queries, dim) float32 queries; see SearchResult."""
        ...

    def get(self, ids: Sequence[str], *, vectors: bool = True) -> Records: ...

    def save(self, path: PathLike) -> None:
        """Write the index atomically to directory ``path``; reopen with ``load_index``."""
        ...


# --------------------------------------------------------------------------- input checks


def check_ids(ids: Sequence[str] | np.ndarray, *, unique: bool = True) -> list[str]:
    """Ids as a list of non-empty str; with ``unique``, repeats within the call are refused."""
    if isinstance(ids, str):
        raise IdError(f"ids must be a sequence of str, got the single str {ids!r}; wrap it in [ ]")
    try:
        out = list(ids)
    except TypeError:
        raise IdError(f"ids must be a sequence of str, got {type(ids).__name__}") from None
    for i in out:
        if not isinstance(i, str):
            raise IdError(f"ids must be str, got {i!r} of type {type(i).__name__}")
        if i == PAD_ID:
            raise IdError("the empty string is not a valid id (it pads search results)")
    if unique and len(set(out)) != len(out):
        dup = sorted(i for i, c in Counter(out).items() if c > 1)
        raise IdError(f"ids repeat within the call: {', '.join(map(repr, dup[:5]))}")
    return out


def check_vectors(
    vectors: Any, dim: int, n: int | None = None, what: str = "vectors"
) -> np.ndarray:
    """(n, dim) float32 C-contiguous array; refuses other shapes, non-float dtypes, NaN and inf.

    Float64 input is converted. A single (dim,) vector is accepted as (1, dim).
    """
    arr = np.asarray(vectors)
    if arr.dtype.kind != "f":
        raise VectorError(f"{what} must be floating point (float32), got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]  # (1, dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise VectorError(f"{what} must have shape (n, {dim}), got {tuple(np.shape(vectors))}")
    if n is not None and arr.shape[0] != n:
        raise VectorError(f"got {n} ids but {arr.shape[0]} {what}; they must match one to one")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise VectorError(f"{what} hold NaN or inf in row(s) {bad[:5].tolist()}")
    return arr


def warn_if_not_normalised(vectors: np.ndarray, tol: float = 1e-2) -> None:
    """Log a warning when rows are not unit length: scores are inner products, not cosines."""
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    if norms.size and float(np.abs(norms - 1.0).max()) > tol:
        log.warning(
            "vectors are not L2-normalised (norms from %.3g to %.3g); scores are inner "
            "products, so normalise them for cosine similarity",
            float(norms.min()),
            float(norms.max()),
        )


def check_k(k: Any) -> int:
    """k as a positive int."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise SearchArgumentError(f"k must be a positive int, got {k!r}")
    return int(k)


def pad_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty (n_queries, k) result arrays: scores -inf, ids ''."""
    scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    ids = np.full((n_queries, k), PAD_ID, dtype=object)
    return scores, ids
