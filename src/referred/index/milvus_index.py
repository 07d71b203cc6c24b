"""``milvus:<uri>``: the catalogue in Milvus, through pymilvus's ``MilvusClient``.

The same code talks to embedded Milvus Lite (``milvus:./catalog.db``, a local file; needs the
``milvus-lite`` package) and to a Milvus server or cluster (``milvus:http://host:19530``).
Products are rows of one collection: ``id`` (VARCHAR primary key), ``vector`` (FLOAT_VECTOR,
inner product) and the metadata as dynamic fields; filters become Milvus boolean expressions.

Milvus persists by itself: ``save(dir)`` flushes and writes a manifest that ``load_index(dir)``
reconnects from. Unknown-field errors are best effort: known fields are those added through this
object plus those seen in a sample of rows when an existing collection is opened.

``upsert`` deletes the present ids, then inserts: Milvus Lite merges the dynamic (metadata)
fields of an upserted row with the old ones, which would keep stale metadata.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from referred.index.base import (
    Filter,
    Metadata,
    PathLike,
    Records,
    SearchResult,
    check_ids,
    check_k,
    check_vectors,
    pad_result,
)
from referred.index.errors import (
    CorruptIndexError,
    DuplicateIdError,
    EmptyIndexError,
    FilterError,
    MetadataError,
    MissingDependencyError,
    SearchArgumentError,
    SpecError,
    UnknownFieldError,
    UnknownIdError,
)
from referred.index.metadata import to_arrow
from referred.index.storage import checked_info, save_atomically

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = ("id", "vector")
_BATCH = 1000
#: Milvus refuses a search ``limit`` above this.
MAX_K = 16384


def filter_expression(filter: Filter, known: Sequence[str] | None = None) -> str:
    """A Milvus boolean expression for ``{field: value}`` / ``{field: [values]}`` (ANDed)."""
    parts = []
    for field, value in sorted(filter.items()):
        if not isinstance(field, str) or not _FIELD.fullmatch(field) or field in _RESERVED:
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


class _DropUnimplemented(logging.Filter):
    """Milvus Lite's in-process gRPC server logs a traceback for each RPC it does not
    implement (pymilvus probes ``AllocTimestamp`` on connect); the client copes, so drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


def _quiet_lite_server() -> None:
    logger = logging.getLogger("grpc._server")
    if not any(isinstance(f, _DropUnimplemented) for f in logger.filters):
        logger.addFilter(_DropUnimplemented())


class MilvusIndex:
    """A collection in Milvus Lite or a Milvus server; see :class:`~referred.index.VectorIndex`."""

    backend: ClassVar[str] = "milvus"
    #: The Searcher serialises calls into the client (Milvus Lite's thread safety is unknown).
    thread_safe_search: ClassVar[bool] = False

    def __init__(
        self,
        dim: int,
        uri: str,
        *,
        collection: str = "referred",
        token: str = "",
        index_type: str = "AUTOINDEX",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        max_id_length: int = 512,
        consistency_level: str = "Strong",
        spec: str | None = None,
    ) -> None:
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError as exc:
            raise MissingDependencyError(
                "the milvus backend needs pymilvus (and milvus-lite for a local file): "
                "pip install 'referred[milvus]'"
            ) from exc
        if not uri:
            raise SpecError(
                "milvus spec needs a uri: milvus:./catalog.db or milvus:http://host:19530"
            )
        local = not re.match(r"^[a-z]+://", uri)
        if local:
            _quiet_lite_server()
        self.uri = str(Path(uri).absolute()) if local else uri
        self.spec = spec or f"milvus:{uri}"
        self.dim = int(dim)
        self.collection = collection
        #: Free JSON-serialisable notes saved in the manifest (e.g. which model built it).
        self.info: dict[str, Any] = {}
        self._opts = {
            "collection": collection,
            "index_type": index_type,
            "index_params": index_params,
            "search_params": search_params,
            "max_id_length": max_id_length,
            "consistency_level": consistency_level,
        }
        self._search_params = {"metric_type": "IP", "params": search_params or {}}
        self._client = MilvusClient(uri=self.uri, token=token)
        if self._client.has_collection(collection):
            self._check_existing()
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=max_id_length)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            params = self._client.prepare_index_params()
            params.add_index(
                field_name="vector",
                index_type=index_type,
                metric_type="IP",
                params=index_params or {},
            )
            self._client.create_collection(
                collection,
                schema=schema,
                index_params=params,
                consistency_level=consistency_level,  # "Strong": reads see every write
            )
            self._fields: set[str] = set()
        self._client.load_collection(collection)

    def _check_existing(self) -> None:
        desc = self._client.describe_collection(self.collection)
        dims = [f.get("params", {}).get("dim") for f in desc["fields"] if f["name"] == "vector"]
        if not dims or int(dims[0]) != self.dim:
            raise SpecError(
                f"Milvus collection {self.collection!r} at {self.uri} has vector dim {dims}, "
                f"not {self.dim}"
            )
        sample = self._client.query(self.collection, filter="", limit=100, output_fields=["*"])
        self._fields = {k for row in sample for k in row if k not in _RESERVED}

    # ------------------------------------------------------------------------- protocol

    def __len__(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and bool(self._present([id_]))

    def __repr__(self) -> str:
        return f"MilvusIndex(uri={self.uri!r}, collection={self.collection!r}, dim={self.dim})"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted(self._fields))

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, vectors: np.ndarray) -> None:
        """Milvus trains its own indexes; this only checks ``vectors``."""
        check_vectors(vectors, self.dim)

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        rows = self._rows(ids, vectors, metadata)
        present = self._present([r["id"] for r in rows])
        if present:
            raise DuplicateIdError(
                f"{len(present)} id(s) already in the index: {', '.join(map(repr, present[:5]))}; "
                "use upsert() to replace them"
            )
        for start in range(0, len(rows), _BATCH):
            self._client.insert(self.collection, data=rows[start : start + _BATCH])

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        rows = self._rows(ids, vectors, metadata)
        present = self._present([r["id"] for r in rows])
        # delete + insert, not client.upsert: Milvus Lite would merge old metadata fields in
        for start in range(0, len(present), _BATCH):
            self._client.delete(self.collection, ids=present[start : start + _BATCH])
        for start in range(0, len(rows), _BATCH):
            self._client.insert(self.collection, data=rows[start : start + _BATCH])

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(check_ids(ids, unique=False)))
        present = set(self._present(ids))
        missing = [i for i in ids if i not in present]
        if missing:
            raise UnknownIdError(missing)
        for start in range(0, len(ids), _BATCH):
            self._client.delete(self.collection, ids=ids[start : start + _BATCH])

    def search(self, queries: np.ndarray, k: int, filter: Filter | None = None) -> SearchResult:
        queries = check_vectors(queries, self.dim, what="queries")
        k = check_k(k)
        if k > MAX_K:
            raise SearchArgumentError(f"Milvus returns at most {MAX_K} results; got k={k}")
        expr = filter_expression(filter, self.fields) if filter else ""
        hits = self._client.search(
            self.collection,
            data=queries.tolist(),
            limit=k,
            filter=expr,
            search_params=self._search_params,
            output_fields=[],
        )
        scores, ids = pad_result(len(queries), k)
        for q, row in enumerate(hits):
            for j, hit in enumerate(list(row)[:k]):
                scores[q, j] = hit["distance"]
                ids[q, j] = hit["id"]
        if not (ids != "").any() and len(self) == 0:  # count only when nothing came back
            raise EmptyIndexError(f"search on an empty index ({self.spec}); add vectors first")
        return SearchResult(scores, ids)

    def get(self, ids: Sequence[str], *, vectors: bool = True) -> Records:
        ids = check_ids(ids, unique=False)
        found = {}
        for start in range(0, len(ids), _BATCH):
            chunk = list(dict.fromkeys(ids[start : start + _BATCH]))
            for row in self._client.get(self.collection, ids=chunk, output_fields=["*"]):
                found[row["id"]] = dict(row)
        missing = [i for i in ids if i not in found]
        if missing:
            raise UnknownIdError(missing)
        vecs = None
        if vectors:
            vecs = np.asarray([found[i]["vector"] for i in ids], dtype=np.float32).reshape(
                -1, self.dim
            )
        meta = [{k: v for k, v in found[i].items() if k != "vector" and v is not None} for i in ids]
        return Records(ids, vecs, meta)

    def save(self, path: PathLike) -> None:
        """Flush Milvus and write a manifest that ``load_index`` reconnects from."""
        self._client.flush(self.collection)
        count = len(self)
        manifest = {
            "backend": self.backend,
            "spec": self.spec,
            "dim": self.dim,
            "count": count,
            "rows": count,
            "options": {"uri": self.uri, **self._opts},  # never the token
            "info": checked_info(self.info),
        }
        save_atomically(path, lambda directory: None, manifest)

    @classmethod
    def _load(
        cls, directory: Path, manifest: dict[str, Any], *, mmap: bool = True, **options: Any
    ) -> MilvusIndex:
        opts = {**manifest.get("options", {}), **options}
        if "uri" not in opts:
            raise CorruptIndexError(f"{directory} manifest lacks the Milvus uri")
        index = cls(manifest["dim"], opts.pop("uri"), spec=manifest["spec"], **opts)
        index.info = dict(manifest.get("info") or {})
        return index

    # -------------------------------------------------------------------------- helpers

    def _rows(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None
    ) -> list[dict[str, Any]]:
        ids = check_ids(ids)
        vectors = check_vectors(vectors, self.dim, n=len(ids))
        records = to_arrow(metadata, ids).to_pylist()
        for rec in records:
            for name in rec:
                if not _FIELD.fullmatch(name) or name in _RESERVED:
                    raise MetadataError(f"Milvus cannot store a metadata field named {name!r}")
        rows = [
            {"id": i, "vector": v, **{k: x for k, x in rec.items() if x is not None}}
            for i, v, rec in zip(ids, vectors.tolist(), records)
        ]
        self._fields.update(name for rec in records for name in rec)
        return rows

    def _present(self, ids: Sequence[str]) -> list[str]:
        out = []
        for start in range(0, len(ids), _BATCH):
            rows = self._client.get(
                self.collection, ids=list(ids[start : start + _BATCH]), output_fields=["id"]
            )
            out.extend(r["id"] for r in rows)
        return out
