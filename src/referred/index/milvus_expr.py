"""Filters as Milvus boolean expressions, and the metadata field types the milvus backend knows.

Milvus keeps metadata as dynamic (JSON) fields and accepts any value in any row, so the
backend keeps its own record of each field's type, as the local backends do: a metadata value
that conflicts with it, a filter on an unknown field and a filter value of the wrong type are
refused with the same errors as with ``flat`` and ``faiss:``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from referred.index.base import Filter
from referred.index.errors import FilterError, MetadataError, UnknownFieldError
from referred.index.metadata import MetadataTable, _check_value_types

FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED = ("id", "vector")


def filter_expression(filter: Filter, known: Sequence[str] | None = None) -> str:
    """A Milvus boolean expression for ``{field: value}`` / ``{field: [values]}`` (ANDed)."""
    parts = []
    for field, value in sorted(filter.items()):
        if not isinstance(field, str) or not FIELD.fullmatch(field) or field in RESERVED:
            raise FilterError(f"cannot filter on field {field!r} in Milvus")
        if known is not None and field not in known:
            raise UnknownFieldError(field, known)
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        literals = [_literal(field, v) for v in values]
        if isinstance(value, (list, tuple, set, frozenset)):
            parts.append(f"{field} in [{', '.join(literals)}]")
        else:
            parts.append(f"{field} == {literals[0]}")
    return " and ".join(parts)


def _literal(field: str, value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise FilterError(f"filter value {value!r} for field {field!r} must be a str, number or bool")


def checked_filter(filter: Filter, schema: pa.Schema) -> dict[str, list[Any]] | None:
    """``filter`` checked against the known field types as ``{field: [values]}``; None when
    a field lists no values (nothing can match)."""
    if not isinstance(filter, Mapping):
        raise FilterError(
            'filter must be a mapping such as {"category": "Bags"} or '
            f'{{"category": ["Bags", "Feet"]}}, got {type(filter).__name__}'
        )
    for field in filter:
        if not isinstance(field, str) or not FIELD.fullmatch(field) or field in RESERVED:
            raise FilterError(f"cannot filter on field {field!r} in Milvus")
    normal = MetadataTable(schema.empty_table()).normalise_filter(filter)
    for field, values in normal:
        _check_value_types(field, values, schema.field(field).type)
    if any(not values for _, values in normal):
        return None
    return {field: list(values) for field, values in normal}


def table_of(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows read back from Milvus (dynamic fields) as a table without ``id`` and ``vector``."""
    rows = [{k: v for k, v in r.items() if k not in RESERVED} for r in records]
    fields = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for name in fields:
        try:
            columns[name] = pa.array([r.get(name) for r in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # another client stored mixed types: leave the field untyped
    return pa.table(columns) if columns else pa.table({})


def merged_schema(schema: pa.Schema, table: pa.Table, *, strict: bool = True) -> pa.Schema:
    """``schema`` with ``table``'s fields added; MetadataError on a type conflict (``strict``),
    else the conflicting fields keep their known type."""
    for name in table.column_names:
        if not FIELD.fullmatch(name) or name in RESERVED:
            raise MetadataError(f"Milvus cannot store a metadata field named {name!r}")
    try:
        return pa.unify_schemas([schema, table.schema], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        if strict:
            raise MetadataError(f"metadata conflicts with the stored field types: {exc}") from None
    known = set(schema.names)
    return pa.schema([*schema, *(f for f in table.schema if f.name not in known)])


def schema_to_json(schema: pa.Schema) -> dict[str, str]:
    """Field name → arrow type name, for the manifest."""
    return {f.name: str(f.type) for f in schema}


def schema_from_json(fields: Mapping[str, str] | None) -> pa.Schema:
    """The inverse of :func:`schema_to_json`; a type arrow cannot parse becomes ``null``
    (the field is known, its values are not type-checked)."""
    out = []
    for name, type_name in (fields or {}).items():
        try:
            out.append(pa.field(name, pa.type_for_alias(type_name)))
        except (ValueError, KeyError):
            out.append(pa.field(name, pa.null()))
    return pa.schema(out)
