"""``milvus:<uri>``: the catalogue in Milvus, through pymilvus's ``MilvusClient``.

The same code talks to embedded Milvus Lite (``milvus:./catalog.db``, a local file; needs the
``milvus-lite`` package) and to a Milvus server or cluster (``milvus:http://host:19530``).
Products are rows of one collection: ``id`` (VARCHAR primary key), ``vector`` (FLOAT_VECTOR,
inner product) and the metadata as dynamic fields; filters become Milvus boolean expressions.

Search settings (measured in docs/search.md, "Milvus"):

* The vector index is ``HNSW`` (M 16, efConstruction 200) searched with ``ef`` =
  max(``ef_search``, k), ``ef_search`` 128 by default. Milvus builds it per sealed segment,
  after a flush; until then rows sit in growing segments that a Milvus 2.3 server searches
  through a coarse interim IVF index (recall@10 ~0.73 measured). :meth:`wait_until_indexed`
  flushes and waits until every loaded segment serves the index (the catalog build calls it).
* A filter matching at most ``exact_filter_rows`` products (1,000) is answered exactly: their
  vectors are fetched and scored here, so a selective filter returns the true top-k whatever
  state the server's segments are in (Milvus's own filtered search is approximate on segments
  not yet indexed). Fetching costs ~0.13 ms per 512-d product (40 ms for 200, 260 ms for
  2,000 measured); a wider filter is passed to Milvus's filtered search.
* Consistency: searches and reads use ``Session`` (default): a process sees its own writes,
  and another process's writes once the server has applied them (within its 200 ms time tick)
  without paying Strong's wait for the next tick on every search (200–400 ms measured). The
  existence checks of ``add`` and ``delete`` read ``Strong``, so two workers sharing one
  collection cannot add one id twice.

Milvus persists by itself: ``save(dir)`` flushes and writes a manifest (the URI, options and
the metadata field types) that ``load_index(dir)`` reconnects from. Known fields are those
in the manifest, those added through this object and those seen in a sample of rows when an
existing collection is opened.

``upsert`` deletes the ids, then inserts: Milvus Lite merges the dynamic (metadata) fields of
an upserted row with the old ones, which would keep stale metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

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
    MissingDependencyError,
    SearchArgumentError,
    SpecError,
    UnknownIdError,
)
from referred.index.metadata import to_arrow
from referred.index.milvus_expr import (
    checked_filter,
    filter_expression,
    merged_schema,
    schema_from_json,
    schema_to_json,
    table_of,
)
from referred.index.milvus_ops import check_settings, quiet_lite_server, wait_until_indexed
from referred.index.storage import checked_info, save_atomically
from referred.index.vectors import VectorStore, exact_search

__all__ = ["MAX_K", "MilvusIndex", "filter_expression"]

_BATCH = 1000
#: Milvus refuses a search ``limit`` (and a query's limit) above this.
MAX_K = 16384
DEFAULT_INDEX = ("HNSW", {"M": 16, "efConstruction": 200})


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
        index_type: str = DEFAULT_INDEX[0],
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        ef_search: int = 128,
        exact_filter_rows: int = 1000,
        max_id_length: int = 512,
        consistency_level: str = "Session",
        fields: dict[str, str] | None = None,
        spec: str | None = None,
    ) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise MissingDependencyError(
                "the milvus backend needs pymilvus (and milvus-lite for a local file): "
                "pip install 'referred[milvus]'"
            ) from exc
        if not uri:
            raise SpecError(
                "milvus spec needs a uri: milvus:./catalog.db or milvus:http://host:19530"
            )
        check_settings(ef_search, exact_filter_rows, MAX_K)
        self.local = not re.match(r"^[a-z]+://", uri)
        if self.local:
            quiet_lite_server()
        self.uri = str(Path(uri).absolute()) if self.local else uri
        self.spec = spec or f"milvus:{uri}"
        self.dim = int(dim)
        self.collection = collection
        self.ef_search = int(ef_search)
        self.exact_filter_rows = int(exact_filter_rows)
        self.consistency_level = consistency_level
        #: Free JSON-serialisable notes saved in the manifest (e.g. which model built it).
        self.info: dict[str, Any] = {}
        if index_params is None and index_type == DEFAULT_INDEX[0]:
            index_params = dict(DEFAULT_INDEX[1])
        self._opts = {
            "collection": collection,
            "index_type": index_type,
            "index_params": index_params,
            "search_params": search_params,
            "max_id_length": max_id_length,
            "consistency_level": consistency_level,
        }
        self._search_params = dict(search_params or {})
        self._strong_once = False
        self._schema = schema_from_json(fields)
        self._client = MilvusClient(uri=self.uri, token=token)
        exists = self._client.has_collection(collection)
        if not exists:
            self._create(index_type, index_params or {}, max_id_length)
        self._client.load_collection(collection)  # after a server restart, too
        if exists:
            self._check_existing()

    def _create(self, index_type: str, index_params: dict[str, Any], max_id_length: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=max_id_length)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self._client.prepare_index_params()
        params.add_index(
            field_name="vector", index_type=index_type, metric_type="IP", params=index_params
        )
        self._client.create_collection(
            self.collection,
            schema=schema,
            index_params=params,
            consistency_level=self.consistency_level,
        )

    def _check_existing(self) -> None:
        desc = self._client.describe_collection(self.collection)
        dims = [f.get("params", {}).get("dim") for f in desc["fields"] if f["name"] == "vector"]
        if not dims or int(dims[0]) != self.dim:
            raise SpecError(
                f"Milvus collection {self.collection!r} at {self.uri} has vector dim {dims}, "
                f"not {self.dim}"
            )
        sample = self._client.query(
            self.collection, filter="", limit=100, output_fields=["*"], **self._read
        )
        self._schema = merged_schema(self._schema, table_of(sample), strict=False)

    @property
    def _read(self) -> dict[str, str]:
        if self._strong_once:  # our delete: Milvus 2.3 returns no timestamp Session could use
            self._strong_once = False
            return {"consistency_level": "Strong"}
        return {"consistency_level": self.consistency_level}

    # ------------------------------------------------------------------------- protocol

    def __len__(self) -> int:
        res = self._client.query(
            self.collection, filter="", output_fields=["count(*)"], **self._read
        )
        return int(res[0]["count(*)"])

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and bool(self._present([id_]))

    def __repr__(self) -> str:
        return f"MilvusIndex(uri={self.uri!r}, collection={self.collection!r}, dim={self.dim})"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted(self._schema.names))

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, vectors: np.ndarray) -> None:
        """Milvus trains its own indexes; this only checks ``vectors``."""
        check_vectors(vectors, self.dim)

    def add(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        rows, schema = self._rows(ids, vectors, metadata)
        present = self._present([r["id"] for r in rows], strong=True)
        if present:
            raise DuplicateIdError(
                f"{len(present)} id(s) already in the index: {', '.join(map(repr, present[:5]))}; "
                "use upsert() to replace them"
            )
        self._insert(rows, schema)

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None = None
    ) -> None:
        rows, schema = self._rows(ids, vectors, metadata)
        # delete + insert, not client.upsert: Milvus Lite would merge old metadata fields in;
        # deleting an absent id is a no-op, so no existence check is needed
        for start in range(0, len(rows), _BATCH):
            chunk = [r["id"] for r in rows[start : start + _BATCH]]
            self._client.delete(self.collection, ids=chunk)
        self._insert(rows, schema)

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(check_ids(ids, unique=False)))
        present = set(self._present(ids, strong=True))
        missing = [i for i in ids if i not in present]
        if missing:
            raise UnknownIdError(missing)
        for start in range(0, len(ids), _BATCH):
            self._client.delete(self.collection, ids=ids[start : start + _BATCH])
        self._strong_once = bool(ids)

    def search(self, queries: np.ndarray, k: int, filter: Filter | None = None) -> SearchResult:
        queries = check_vectors(queries, self.dim, what="queries")
        k = check_k(k)
        if k > MAX_K:
            raise SearchArgumentError(f"Milvus returns at most {MAX_K} results; got k={k}")
        expr = ""
        if filter is not None:
            self._learn_fields(filter)
            flt = checked_filter(filter, self._schema)
            if flt is None:  # a field with an empty list of values: nothing matches
                return SearchResult(*pad_result(len(queries), k))
            expr = filter_expression(flt)
        if not len(queries):
            return SearchResult(*pad_result(0, k))
        if expr and self.exact_filter_rows and self._selective(expr):
            return self._exact(queries, k, expr)
        result = self._ann(queries, k, expr)
        if not (result.ids != "").any() and len(self) == 0:  # count only when nothing came back
            raise EmptyIndexError(f"search on an empty index ({self.spec}); add vectors first")
        return result

    def get(self, ids: Sequence[str], *, vectors: bool = True) -> Records:
        ids = check_ids(ids, unique=False)
        found = {}
        for start in range(0, len(ids), _BATCH):
            chunk = list(dict.fromkeys(ids[start : start + _BATCH]))
            rows = self._client.get(self.collection, ids=chunk, output_fields=["*"], **self._read)
            for row in rows:
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
            "options": {  # never the token
                "uri": self.uri,
                **self._opts,
                "ef_search": self.ef_search,
                "exact_filter_rows": self.exact_filter_rows,
                "fields": schema_to_json(self._schema),
            },
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

    # ------------------------------------------------------------------------ server side

    def wait_until_indexed(self, timeout: float = 3600.0, poll: float = 1.0) -> bool:
        """Flush, then wait until the server has built the vector index of every segment and
        its query nodes serve it (:func:`~referred.index.milvus_ops.wait_until_indexed`).
        True when done, False (logged) on timeout; Milvus Lite returns at once."""
        self._client.flush(self.collection)
        if self.local:
            return True
        return wait_until_indexed(self._client, self.collection, timeout, poll)

    # -------------------------------------------------------------------------- helpers

    def _ann(self, queries: np.ndarray, k: int, expr: str) -> SearchResult:
        params = dict(self._search_params)
        if self._opts["index_type"] == "HNSW":
            params["ef"] = max(int(params.get("ef", self.ef_search)), k)  # Milvus needs ef >= k
        hits = self._client.search(
            self.collection,
            data=queries.tolist(),
            limit=k,
            filter=expr,
            search_params={"metric_type": "IP", "params": params},
            output_fields=[],
            **self._read,
        )
        scores, ids = pad_result(len(queries), k)
        for q, row in enumerate(hits):
            for j, hit in enumerate(list(row)[:k]):
                scores[q, j] = hit["distance"]
                ids[q, j] = hit["id"]
        return SearchResult(scores, ids)

    def _learn_fields(self, filter: Filter) -> None:
        """Fields of ``filter`` unknown here that another client (a second web worker) added:
        a row holding one of the asked values makes the field and its type known."""
        if not isinstance(filter, Mapping):
            return
        for field, value in filter.items():
            if field in self._schema.names or not isinstance(field, str):
                continue
            try:
                expr = filter_expression({field: value})
            except FilterError:
                continue  # checked_filter names the problem
            if isinstance(value, (list, tuple, set, frozenset)) and not value:
                continue
            rows = self._client.query(
                self.collection, filter=expr, output_fields=[field], limit=1, **self._read
            )
            self._schema = merged_schema(self._schema, table_of(rows), strict=False)

    def _selective(self, expr: str) -> bool:
        """True when at most ``exact_filter_rows`` products match ``expr`` (ids only read)."""
        rows = self._client.query(
            self.collection,
            filter=expr,
            output_fields=["id"],
            limit=self.exact_filter_rows + 1,
            **self._read,
        )
        return len(rows) <= self.exact_filter_rows

    def _exact(self, queries: np.ndarray, k: int, expr: str) -> SearchResult:
        """Exact top-k of ``queries`` over the products matching ``expr`` (vectors fetched)."""
        rows = self._client.query(
            self.collection,
            filter=expr,
            output_fields=["id", "vector"],
            limit=self.exact_filter_rows + 1,
            **self._read,
        )
        if not rows:
            return SearchResult(*pad_result(len(queries), k))
        vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32)  # (m, dim)
        top_s, top_r = exact_search(VectorStore(self.dim, base=vectors), queries, k)  # (nq, k)
        id_arr = np.asarray([*(r["id"] for r in rows), ""], dtype=object)  # row -1 pads
        return SearchResult(top_s, id_arr[top_r])

    def _rows(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Metadata | None
    ) -> tuple[list[dict[str, Any]], pa.Schema]:
        ids = check_ids(ids)
        vectors = check_vectors(vectors, self.dim, n=len(ids))
        table = to_arrow(metadata, ids)
        schema = merged_schema(self._schema, table)
        rows = [
            {"id": i, "vector": v, **{k: x for k, x in rec.items() if x is not None}}
            for i, v, rec in zip(ids, vectors.tolist(), _records(table, len(ids)))
        ]
        return rows, schema

    def _insert(self, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
        for start in range(0, len(rows), _BATCH):
            self._client.insert(self.collection, data=rows[start : start + _BATCH])
        self._schema = schema

    def _present(self, ids: Sequence[str], *, strong: bool = False) -> list[str]:
        level = {"consistency_level": "Strong"} if strong else self._read
        out = []
        for start in range(0, len(ids), _BATCH):
            chunk = list(ids[start : start + _BATCH])
            rows = self._client.get(self.collection, ids=chunk, output_fields=["id"], **level)
            out.extend(r["id"] for r in rows)
        return out


def _records(table: pa.Table, n: int) -> list[dict[str, Any]]:
    return table.to_pylist() if table.num_columns else [{} for _ in range(n)]
