"""Columnar product metadata kept beside the vectors, and filters evaluated on it.

Rows line up with the index's internal rows. Columns are pyarrow arrays (saved as parquet with
the ids); a product that lacks a field holds null there, and nulls never match a filter. Filters
are evaluated on dictionary-encoded columns, so a category filter over a million rows costs an
integer comparison, and the resulting masks are cached until the table changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from referred.index.base import Filter, Metadata
from referred.index.errors import FilterError, MetadataError, UnknownFieldError

#: Field names that metadata may not use: ``id`` is given by the ``ids`` argument.
RESERVED_FIELDS = ("id",)
_SCALARS = (str, int, float, bool, np.generic)
_MASK_CACHE_SIZE = 32


def to_arrow(metadata: Metadata | None, ids: Sequence[str]) -> pa.Table:
    """Metadata for ``ids`` as a pyarrow Table of len(ids) rows, without an ``id`` column.

    Accepts None, one mapping per id, a pandas DataFrame or a pyarrow Table. An ``id`` field is
    allowed only when it equals ``ids``.
    """
    n = len(ids)
    if metadata is None:
        return pa.table({"_": pa.nulls(n)}).drop_columns(["_"])  # n rows, no columns
    if isinstance(metadata, pa.Table):
        table = metadata
    elif hasattr(metadata, "to_dict") and hasattr(metadata, "columns"):  # pandas DataFrame
        table = pa.Table.from_pandas(metadata, preserve_index=False)
    elif isinstance(metadata, Sequence) and not isinstance(metadata, (str, bytes)):
        table = _records_to_arrow(metadata)
    else:
        raise MetadataError(
            "metadata must be None, a sequence of mappings, a pandas DataFrame or a pyarrow "
            f"Table, got {type(metadata).__name__}"
        )
    if table.num_rows != n:
        raise MetadataError(f"got {n} ids but metadata for {table.num_rows} products")
    for name in table.column_names:
        if not isinstance(name, str) or not name:
            raise MetadataError(f"metadata field names must be non-empty str, got {name!r}")
    if len(set(table.column_names)) != table.num_columns:
        raise MetadataError(f"metadata fields repeat: {table.column_names}")
    if "id" in table.column_names:
        if table.column("id").to_pylist() != list(ids):
            raise MetadataError("metadata field 'id' differs from the ids argument; drop it")
        table = table.drop_columns(["id"])
    return table


def _records_to_arrow(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    fields: dict[str, None] = {}  # ordered union of keys
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise MetadataError(f"metadata[{i}] must be a mapping, got {type(rec).__name__}")
        fields.update(dict.fromkeys(rec))
    columns = {}
    for name in fields:
        values = [rec.get(name) for rec in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MetadataError(f"metadata field {name!r} mixes value types: {exc}") from None
    if not columns:
        return pa.table({"_": pa.nulls(len(records))}).drop_columns(["_"])
    return pa.table(columns)


class MetadataTable:
    """Metadata rows aligned with index rows; appended in chunks, consolidated when read."""

    def __init__(self, table: pa.Table | None = None) -> None:
        self._chunks: list[pa.Table] = [table] if table is not None else []
        self._schema = table.schema if table is not None else pa.schema([])
        self._n_rows = table.num_rows if table is not None else 0
        self._encoded: dict[str, tuple[np.ndarray, dict[Any, int], pa.DataType]] = {}
        self._masks: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n_rows

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._schema.names)

    def check_compatible(self, table: pa.Table) -> None:
        """Raise MetadataError when ``table``'s field types conflict with the stored ones."""
        try:
            pa.unify_schemas([self._schema, table.schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MetadataError(f"metadata conflicts with the stored field types: {exc}") from None

    def append(self, table: pa.Table) -> None:
        """Append rows (already checked with :meth:`check_compatible`)."""
        self._schema = pa.unify_schemas([self._schema, table.schema], promote_options="permissive")
        self._chunks.append(table)
        self._n_rows += table.num_rows
        self._changed()

    def state(self) -> tuple:
        """An opaque snapshot for :meth:`restore` (cheap: arrow tables are immutable)."""
        return list(self._chunks), self._schema, self._n_rows

    def restore(self, state: tuple) -> None:
        """Go back to a :meth:`state` snapshot (undoes a failed append)."""
        chunks, self._schema, self._n_rows = state
        self._chunks = list(chunks)
        self._changed()

    def table(self) -> pa.Table:
        """All rows as one table (n_rows rows)."""
        if len(self._chunks) != 1:
            if not self._chunks:
                return pa.table({"_": pa.nulls(0)}).drop_columns(["_"])
            merged = pa.concat_tables(self._chunks, promote_options="permissive")
            if merged.num_columns == 0:  # concatenated column-less tables lose their rows
                merged = pa.table({"_": pa.nulls(self._n_rows)}).drop_columns(["_"])
            self._chunks = [merged.combine_chunks()]
        return self._chunks[0]

    def take(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Non-null fields of each row in ``rows`` (m,) as m dicts."""
        table = self.table()
        if table.num_columns == 0:  # to_pylist() of a column-less table is [], not m dicts
            return [{} for _ in range(len(rows))]
        records = table.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()
        return [{k: v for k, v in rec.items() if v is not None} for rec in records]

    def compact(self, keep: np.ndarray) -> None:
        """Keep only rows where the (n_rows,) bool ``keep`` is True."""
        self._chunks = [self.table().filter(pa.array(keep))]
        self._n_rows = int(np.count_nonzero(keep))
        self._changed()

    def _changed(self) -> None:
        self._encoded.clear()
        self._masks.clear()

    # ------------------------------------------------------------------------------- filters

    def normalise_filter(self, filter: Filter) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """``filter`` as sorted ``((field, values), ...)``; checks fields and value types."""
        if not isinstance(filter, Mapping):
            raise FilterError(
                'filter must be a mapping such as {"category": "Bags"} or '
                f'{{"category": ["Bags", "Feet"]}}, got {type(filter).__name__}'
            )
        out = []
        for field, value in filter.items():
            if field not in self._schema.names:
                raise UnknownFieldError(str(field), self._schema.names)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            for v in values:
                if not isinstance(v, _SCALARS):
                    raise FilterError(
                        f"filter value {v!r} for field {field!r} must be a str, number or bool "
                        "(or a list of them); missing values never match"
                    )
            out.append((field, tuple(v.item() if isinstance(v, np.generic) else v for v in values)))
        return tuple(sorted(out, key=lambda fv: fv[0]))

    def mask(self, filter: Filter) -> np.ndarray:
        """(n_rows,) bool: rows matching every field of ``filter`` (cached until a change)."""
        key = self.normalise_filter(filter)
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        mask = np.ones(self._n_rows, dtype=bool)
        for field, values in key:
            mask &= self._field_mask(field, values)
        if len(self._masks) >= _MASK_CACHE_SIZE:
            self._masks.pop(next(iter(self._masks)))
        mask.flags.writeable = False
        self._masks[key] = mask
        return mask

    def _field_mask(self, field: str, values: tuple[Any, ...]) -> np.ndarray:
        codes, lookup, dtype = self._encode(field)
        _check_value_types(field, values, dtype)
        wanted = [lookup[v] for v in values if v in lookup]
        if not wanted:
            return np.zeros(self._n_rows, dtype=bool)
        if len(wanted) == 1:
            return codes == wanted[0]
        return np.isin(codes, wanted)

    def _encode(self, field: str) -> tuple[np.ndarray, dict[Any, int], pa.DataType]:
        if field not in self._encoded:
            column = self.table().column(field)
            if pa.types.is_nested(column.type):
                raise FilterError(
                    f"field {field!r} holds {column.type} values; filters need scalars"
                )
            encoded = column.combine_chunks().dictionary_encode()
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            lookup = {v: i for i, v in enumerate(encoded.dictionary.to_pylist())}
            self._encoded[field] = (codes.astype(np.int32, copy=False), lookup, column.type)
        return self._encoded[field]


def _check_value_types(field: str, values: tuple[Any, ...], dtype: pa.DataType) -> None:
    """Refuse filter values that can never equal a value of a column of type ``dtype``."""
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        ok, want = (lambda v: isinstance(v, str)), "str"
    elif pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        ok, want = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)), "number"
    elif pa.types.is_boolean(dtype):
        ok, want = (lambda v: isinstance(v, bool)), "bool"
    else:
        return
    for v in values:
        if not ok(v):
            raise FilterError(
                f"filter value {v!r} for field {field!r} must be a {want} (the field holds {dtype})"
            )
