"""Writers of the training-code layout, shared by ``data synth`` and ``data prepare``.

Every output is written under a temporary name and renamed when complete
(:func:`referred.data.files.atomic_output`; with ``keep_identical`` an identical existing file
is left untouched), and is byte-reproducible: the same records in the same order give the
same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from referred.data.files import atomic_output
from referred.data.tario import TarShardWriter

#: Column types of the Hugging Face metadata files, as ``data synth`` writes them.
HF_SCHEMA = pa.schema(
    [
        ("URL", pa.string()),
        ("WIDTH", pa.int64()),
        ("HEIGHT", pa.int64()),
        ("punsafe", pa.float64()),
        ("pwatermark", pa.float64()),
        ("language", pa.string()),
        ("TEXT", pa.string()),
        ("ENG_TEXT", pa.string()),
        ("TYPE", pa.string()),
        ("PRODUCT_ID", pa.int64()),
        ("INDEX_SRC", pa.int64()),
        ("SPLIT", pa.string()),
        ("CATEGORY", pa.string()),
        ("blip2_caption1", pa.string()),
        ("blip2_caption2", pa.string()),
    ]
)


#: Schema of the test parquet files: column ``jpg`` (bytes), pandas index ``url``.
URL_BYTES_SCHEMA = pa.Table.from_pandas(
    pd.DataFrame({"jpg": [b""]}, index=pd.Index(["u"], name="url")), preserve_index=True
).schema


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return None
    return str(value)


def encode_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, UTF-8)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=_json_default)
    return text.encode("utf-8")


def write_product_sample(
    tar: TarShardWriter, product_id: str, images: Sequence[tuple[bytes, Mapping[str, Any]]]
) -> None:
    """One product: ``{id}.{i}.jpg`` for each image, then ``{id}.json`` = ``{i: metadata}``."""
    for i, (data, _) in enumerate(images):
        tar.add(f"{product_id}.{i}.jpg", data)
    tar.add(f"{product_id}.json", encode_json({str(i): dict(m) for i, (_, m) in enumerate(images)}))


def write_distractor_sample(
    tar: TarShardWriter, key: str, data: bytes, meta: Mapping[str, Any]
) -> None:
    """One distractor: ``{key}.jpg`` and ``{key}.json`` (flat metadata)."""
    tar.add(f"{key}.jpg", data)
    tar.add(f"{key}.json", encode_json(dict(meta)))


class UrlBytesWriter:
    """Write a parquet file indexed by ``url`` with one column ``jpg`` (the test layout).

    Rows are buffered and written in row groups of ``rows_per_group``; a URL already written
    is skipped (scenes shared by several products are stored once). Atomic, as everywhere.
    """

    def __init__(
        self, path: Path, rows_per_group: int = 1024, keep_identical: bool = False
    ) -> None:
        self.path = path
        self.rows_per_group = rows_per_group
        self._ctx = atomic_output(path, keep_identical)
        self._writer: pq.ParquetWriter | None = None
        self._urls: list[str] = []
        self._data: list[bytes] = []
        self._seen: set[str] = set()
        self._tmp: Path | None = None
        self.count = 0

    def __enter__(self) -> UrlBytesWriter:
        self._tmp = self._ctx.__enter__()
        return self

    def add(self, url: str, data: bytes) -> None:
        """Queue one image (ignored when ``url`` was added before)."""
        if url in self._seen:
            return
        self._seen.add(url)
        self._urls.append(url)
        self._data.append(data)
        self.count += 1
        if len(self._urls) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        frame = pd.DataFrame({"jpg": self._data}, index=pd.Index(self._urls, name="url"))
        table = pa.Table.from_pandas(frame, schema=URL_BYTES_SCHEMA, preserve_index=True)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, URL_BYTES_SCHEMA)
        self._writer.write_table(table)
        self._urls, self._data = [], []

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and (self._urls or self._writer is None):
            self._flush()
        if self._writer is not None:
            self._writer.close()
        self._ctx.__exit__(exc_type, exc, tb)


class MetadataWriter:
    """Write metadata rows (dicts) to a parquet file with a fixed schema, atomically.

    Unknown keys are dropped and absent ones become nulls, so rows from files whose columns
    differ slightly can share one output.
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        rows_per_group: int = 65536,
        keep_identical: bool = False,
    ) -> None:
        self.path = path
        self.schema = schema.remove_metadata()
        self.rows_per_group = rows_per_group
        self._ctx = atomic_output(path, keep_identical)
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self.count = 0

    def __enter__(self) -> MetadataWriter:
        self._writer = pq.ParquetWriter(self._ctx.__enter__(), self.schema)
        return self

    def add(self, row: Mapping[str, Any]) -> None:
        """Queue one row."""
        self._rows.append({name: row.get(name) for name in self.schema.names})
        self.count += 1
        if len(self._rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        assert self._writer is not None, "use MetadataWriter as a context manager"
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and (self._rows or self.count == 0):
            self._flush()
        assert self._writer is not None
        self._writer.close()
        self._ctx.__exit__(exc_type, exc, tb)
