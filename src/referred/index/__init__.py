"""Vector indexes for product search: arrays in, arrays out (no torch).

>>> index = create_index("faiss:HNSW32", dim=512)          # or "flat", "milvus:./catalog.db"
>>> index.add(ids, vectors, metadata=[{"category": "Bags", "title": "..."}, ...])
>>> scores, ids = index.search(queries, k=10, filter={"category": ["Bags", "Feet"]})
>>> index.save("catalog.index"); index = load_index("catalog.index")

See docs/index.md for specs, filters, persistence and memory estimates.
"""

from referred.index.base import Filter, Metadata, Records, SearchResult, VectorIndex
from referred.index.errors import (
    CorruptIndexError,
    DuplicateIdError,
    EmptyIndexError,
    FilterError,
    IdError,
    IndexNotFoundError,
    IndexUsageError,
    MetadataError,
    MissingDependencyError,
    NotTrainedError,
    SearchArgumentError,
    SpecError,
    TargetExistsError,
    UnknownFieldError,
    UnknownIdError,
    VectorError,
)
from referred.index.factory import DEFAULT_SPEC, create_index, estimate_memory, load_index

__all__ = [
    "DEFAULT_SPEC",
    "CorruptIndexError",
    "DuplicateIdError",
    "EmptyIndexError",
    "Filter",
    "FilterError",
    "IdError",
    "IndexNotFoundError",
    "IndexUsageError",
    "Metadata",
    "MetadataError",
    "MissingDependencyError",
    "NotTrainedError",
    "Records",
    "SearchArgumentError",
    "SearchResult",
    "SpecError",
    "TargetExistsError",
    "UnknownFieldError",
    "UnknownIdError",
    "VectorError",
    "VectorIndex",
    "create_index",
    "estimate_memory",
    "load_index",
]
