"""One resumable embedding cache: parquet parts, each written atomically and stamped with a
record of what made its vectors.

Every job that embeds many images keeps its results here: ``referred embed`` and the catalog
build (:func:`referred.embed.embed_items`), the Ray job (:mod:`referred.catalog.ray_embed`) and
the benchmark (:mod:`referred.eval.inputs`).

**Format.** A folder of ``part-NNNNN.parquet`` files with columns ``id`` (string), ``vector``
(fixed-size list of float32, ``d`` wide) and, when the caller knows them, ``category`` (int64,
-1: unknown). Each file's schema metadata holds, under ``referred.cache``, a JSON object:
``format``; ``record``, what made the vectors (model digest, conditioning, ... as the caller
describes them); and the run of the input stream the part covers: ``start``, ``items`` (read,
embedded or failed), ``end`` (the stream ended in this part), ``cut`` (stopped at the caller's
limit before its full size) and ``failures`` (``[id, reason]`` of items not embedded).

**Rules**, the same for every caller:

* A part is written to a hidden temporary file, then renamed: it exists whole or not at all.
  A killed writer's temporary file is removed on the next run.
* A part that cannot be read (truncated, corrupt) is ignored with a warning and removed; its
  items are embedded again.
* A part whose record differs from the job's stops the job with :class:`CacheMismatchError`,
  which names the file and what differs: vectors of two models are never mixed.
* A re-run skips what is done: by id (:class:`OutputCache`, whose parts are merged into one
  ``(id, vector)`` parquet at the end) or by stream position (:meth:`EmbeddingCache.ensure`:
  a larger count extends the cache, and reused parts cost no reading of the stream).
* Items that fail (an unreadable image) are counted and listed, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

FORMAT = 2
_META = b"referred.cache"
Failure = tuple[str, str]


class CacheMismatchError(ValueError):
    """The cache holds vectors made by another model or with other settings."""


@dataclass(frozen=True)
class EmbedItem:
    """One image of a stream: its key (product id or distractor label), the image (anything
    the encode function accepts), its category index (-1: unknown) and its condition."""

    key: str
    image: Any
    category: int = -1
    cond: Any = None


#: items -> (``(m, d)`` float32 vectors of the items that worked, in order;
#: ``{index in items: reason}`` of those that failed).
Encode = Callable[[Sequence[EmbedItem]], tuple[np.ndarray, dict[int, str]]]


@dataclass(frozen=True)
class Part:
    """One finished file: its rows, and the run of the stream it covers (stream parts)."""

    path: Path
    rows: int
    start: int = 0
    items: int = 0
    end: bool = False
    cut: bool = False
    failures: tuple[Failure, ...] = ()

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows,)`` ids as str and ``(rows,)`` int64 categories (-1 where not recorded)."""
        names = pq.read_schema(self.path).names
        table = pq.read_table(self.path, columns=[c for c in ("id", "category") if c in names])
        ids = np.array(table.column("id").to_pylist(), dtype=str)
        return ids, _categories(table)

    def vectors(self) -> np.ndarray:
        """``(rows, d)`` float32."""
        return _vectors(pq.read_table(self.path, columns=["vector"]))


def _part(path: Path, rows: int, meta: dict[str, Any]) -> Part:
    """A :class:`Part` from its file's ``referred.cache`` metadata."""
    return Part(
        path,
        rows,
        int(meta.get("start", 0)),
        int(meta.get("items", rows)),
        bool(meta.get("end", False)),
        bool(meta.get("cut", False)),
        tuple((str(k), str(r)) for k, r in meta.get("failures", ())),
    )


def _categories(table: pa.Table) -> np.ndarray:
    if "category" not in table.column_names:
        return np.full(table.num_rows, -1, np.int64)
    return table.column("category").to_numpy().astype(np.int64, copy=False)


def _vectors(table: pa.Table) -> np.ndarray:
    vec = table.column("vector").combine_chunks()
    values = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(-1, vec.type.list_size)


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """An ``(id, vector)`` parquet (``referred embed``'s output, or a part) → (ids, (N, D))."""
    table = pq.read_table(path, columns=["id", "vector"])
    return table.column("id").to_pylist(), _vectors(table)


def _table(
    ids: Sequence[str], vectors: np.ndarray, categories: np.ndarray | None, meta: dict[str, Any]
) -> pa.Table:
    """The one on-disk layout. An empty part of unknown width is 1 wide (arrow needs >= 1)."""
    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
    flat = np.ascontiguousarray(vectors, np.float32).reshape(-1)
    columns = {
        "id": pa.array(list(ids), pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
    }
    if categories is not None:
        columns["category"] = pa.array(np.asarray(categories, np.int64))
    return pa.table(columns).replace_schema_metadata({_META: json.dumps(meta).encode()})


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_failures(path: Path, failures: Sequence[Failure]) -> None:
    """List ``(id, reason)`` as a TSV at ``path``; remove a stale list when there are none."""
    if failures:
        lines = [f"{i}\t{' '.join(str(reason).split())}" for i, reason in failures]
        path.write_text("id\treason\n" + "\n".join(lines) + "\n")
    elif path.exists():
        path.unlink()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _mismatch(path: Path, found: dict[str, Any] | None, want: dict[str, Any]) -> CacheMismatchError:
    if found is None:
        why = "it has no record of the model that made it: another tool or an older referred"
    else:
        diff = sorted(k for k in set(found) | set(want) if found.get(k) != want.get(k))
        why = "differs in: " + ", ".join(
            f"{k} {_short(found.get(k))} there, {_short(want.get(k))} now" for k in diff
        )
    return CacheMismatchError(
        f"{path} holds embeddings of another model or other settings ({why}); delete it or "
        "write the embeddings elsewhere"
    )


class EmbeddingCache:
    """A folder of parts made with one ``record`` (JSON-able: model digest, conditioning...).

    Opening reads nothing but names; :meth:`parts` reads each part's footer.
    """

    def __init__(self, folder: str | os.PathLike, record: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.record = json.loads(json.dumps(record))  # as it reads back from a file
        if (self.folder / "meta.json").is_file():
            raise CacheMismatchError(
                f"{self.folder} holds embeddings in the old .npy shard format; delete it to "
                "embed again (or write elsewhere)"
            )

    def path(self, number: int) -> Path:
        return self.folder / f"part-{number:05d}.parquet"

    def open(self, path: Path) -> Part | None:
        """The part at ``path``; None (with a warning) when it cannot be read. Raises
        :class:`CacheMismatchError` when it was made with another record."""
        try:
            meta = pq.read_schema(path).metadata or {}
            rows = pq.read_metadata(path).num_rows
            found = json.loads(meta[_META]) if _META in meta else {}
        except (pa.ArrowException, OSError, ValueError) as exc:
            log.warning("ignoring %s, which cannot be read (%s): its items are redone", path, exc)
            return None
        if found.get("record") != self.record:
            raise _mismatch(path, found.get("record"), self.record)
        return _part(path, rows, found)

    def parts(self) -> dict[int, Part]:
        """Readable parts by number; unreadable ones and a killed writer's leftovers removed."""
        if not self.folder.is_dir():
            return {}
        for tmp in self.folder.glob(".part-*.tmp"):
            tmp.unlink()
        found = {}
        for path in sorted(self.folder.glob("part-*.parquet")):
            part = self.open(path)
            if part is None:
                path.unlink()
            else:
                found[int(path.stem.split("-")[1])] = part
        return found

    def write(
        self,
        number: int,
        ids: Sequence[str],
        vectors: np.ndarray,
        categories: np.ndarray | None = None,
        *,
        start: int = 0,
        items: int | None = None,
        end: bool = False,
        cut: bool = False,
        failures: Sequence[Failure] = (),
    ) -> Part:
        """Write part ``number`` atomically: ``(n,)`` ids, ``(n, d)`` vectors, ``(n,)``
        categories, and the run of the stream it covers (``items`` default: ``n``)."""
        if len(vectors) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        self.folder.mkdir(parents=True, exist_ok=True)
        run = {"start": start, "items": len(ids) if items is None else items, "end": end}
        meta = {"format": FORMAT, "record": self.record, **run, "cut": cut}
        meta["failures"] = [list(f) for f in failures]
        _write_atomic(_table(ids, vectors, categories, meta), self.path(number))
        return _part(self.path(number), len(ids), meta)

    def ensure(
        self,
        items: Iterable[EmbedItem],
        encode: Encode,
        limit: int | None = None,
        part_size: int = 4096,
        on_rows: Callable[[int], None] | None = None,
    ) -> Stream:
        """Embed what is missing of a stream until ``limit`` rows (``None``: all items) exist.

        Part ``i`` starts where part ``i - 1`` stopped, so the cache is keyed by stream
        position: finished parts are reused without reading their items, the stream is
        advanced only to embed a part, and asking for more rows later extends the cache. A
        part cut at an earlier, smaller limit is redone when more rows are wanted. ``on_rows``
        is called with the rows of each part, found done or new.
        """
        if part_size < 1:
            raise ValueError(f"part_size must be >= 1, got {part_size}")
        found, stream = self.parts(), iter(items)
        chain: list[Part] = []
        rows = pos = consumed = 0  # rows so far, stream position, items taken from ``stream``
        while limit is None or rows < limit:
            need = None if limit is None else limit - rows
            part = found.get(len(chain))
            if not _continues(part, pos, need):
                skipped = sum(1 for _ in islice(stream, pos - consumed))
                if skipped != pos - consumed:
                    raise ValueError(
                        f"the item stream ended at {consumed + skipped} items, but the cache in "
                        f"{self.folder} covers {pos}: the data changed; delete the cache"
                    )
                part = self._embed_part(len(chain), pos, stream, encode, part_size, need)
                consumed = pos + part.items
            chain.append(part)
            rows, pos = rows + part.rows, pos + part.items
            if on_rows is not None:
                on_rows(part.rows)
            if part.end:
                break
        return Stream.of(chain)

    def _embed_part(
        self,
        number: int,
        start: int,
        stream: Iterator[EmbedItem],
        encode: Encode,
        size: int,
        need: int | None,
    ) -> Part:
        """Take items until ``size`` are read, ``need`` rows embedded or the stream ends."""
        taken: list[EmbedItem] = []
        done: list[EmbedItem] = []
        vectors: list[np.ndarray] = []
        failures: list[Failure] = []
        end = False
        while len(taken) < size and (need is None or len(done) < need):
            want = size - len(taken) if need is None else min(size - len(taken), need - len(done))
            batch = list(islice(stream, want))
            if batch:
                vecs, failed = encode(batch)
                failures += [(batch[i].key, reason) for i, reason in sorted(failed.items())]
                done += [it for i, it in enumerate(batch) if i not in failed]
                vectors += [vecs] if len(vecs) else []
                taken += batch
            if len(batch) < want:
                end = True
                break
        return self.write(
            number,
            [it.key for it in done],
            np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32),
            np.array([it.category for it in done], np.int64),
            start=start,
            items=len(taken),
            end=end,
            cut=not end and len(taken) < size,
            failures=failures,
        )


def _continues(part: Part | None, pos: int, need: int | None) -> bool:
    """``part`` starts at ``pos`` and is whole, or was cut short but has the ``need`` rows."""
    if part is None or part.start != pos:
        return False
    return not part.cut or (need is not None and part.rows >= need)


@dataclass(frozen=True)
class Stream:
    """The parts that cover the first items of a stream, in order, and their rows' keys."""

    parts: tuple[Part, ...]
    keys: np.ndarray  # (n,) str
    categories: np.ndarray  # (n,) int64
    exhausted: bool  # the stream ended before the requested rows

    @classmethod
    def of(cls, parts: Sequence[Part]) -> Stream:
        keys = [p.keys() for p in parts]
        return cls(
            tuple(parts),
            np.concatenate([k for k, _ in keys]) if keys else np.zeros(0, str),
            np.concatenate([c for _, c in keys]) if keys else np.zeros(0, np.int64),
            bool(parts) and parts[-1].end,
        )

    def __len__(self) -> int:
        return int(self.keys.size)

    @property
    def failures(self) -> list[Failure]:
        return [f for p in self.parts for f in p.failures]

    def blocks(self, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``((b, d) float32, (b,) int64)`` blocks of the first ``limit`` rows, one part at a
        time (a block source for :func:`referred.eval.evaluate`)."""
        left = len(self) if limit is None else min(limit, len(self))
        start = 0
        for part in self.parts:
            if left <= 0:
                return
            if part.rows:
                n = min(part.rows, left)
                yield part.vectors()[:n], self.categories[start : start + n]
                left -= n
            start += part.rows

    def load(self) -> np.ndarray:
        """All rows as one ``(n, d)`` float32 array (queries and targets: a few thousand)."""
        arrays = [p.vectors() for p in self.parts if p.rows]
        if not arrays:
            raise ValueError("no embeddings in the cache (no items were embedded)")
        return np.concatenate(arrays)


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


@dataclass
class EmbedReport:
    """What a job did: rows embedded now, rows found done, and the items it skipped."""

    output: Path
    embedded: int = 0
    already_done: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.embedded + self.already_done


class OutputCache:
    """An ``(id, vector)`` parquet ``out`` built resumably, keyed by id.

    Rows go to parts in ``out.parts/`` as they come; :meth:`finish` merges ``out`` (the rows
    of earlier runs) and the parts into ``out`` atomically, then removes the parts. An id in
    ``out`` or in a part is done. ``out`` carries the record too, so a later run with another
    model or condition is refused even after the parts are gone.
    """

    def __init__(
        self, out: str | os.PathLike, record: dict[str, Any], dim: int, rows_per_part: int = 4096
    ) -> None:
        self.out, self.dim, self.rows_per_part = Path(out), dim, rows_per_part
        self.cache = EmbeddingCache(parts_dir(self.out), record)
        self.merged = self.cache.open(self.out) if self.out.is_file() else None
        self.parts = self.cache.parts()
        self._next = max(self.parts, default=-1) + 1
        self._ids: list[str] = []
        self._vecs: list[np.ndarray] = []

    def _files(self) -> list[Path]:
        return ([self.merged.path] if self.merged else []) + [p.path for p in self.parts.values()]

    def pending(
        self, items: Iterable[tuple[str, Any]], report: EmbedReport
    ) -> Iterator[tuple[str, Any]]:
        """The ``(id, image)`` pairs still to embed: done ids are counted in ``report``, a
        repeated id is listed among its failures (the first is kept)."""
        done: set[str] = set()
        for path in self._files():
            done.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        seen: set[str] = set()
        for item_id, src in items:
            if item_id in done:
                report.already_done += 1
            elif item_id in seen:
                report.failures.append((item_id, "duplicate id in the input; kept the first"))
            else:
                seen.add(item_id)
                yield item_id, src

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Buffer ``(n, d)`` rows; a part is written every ``rows_per_part`` rows."""
        self._ids.extend(ids)
        self._vecs.append(vectors)
        if len(self._ids) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if self._ids:
            part = self.cache.write(self._next, self._ids, np.concatenate(self._vecs))
            self.parts[self._next] = part
            self._next, self._ids, self._vecs = self._next + 1, [], []

    def finish(self) -> None:
        """Merge the previous output and all parts into ``out`` (atomically)."""
        self.flush()
        tables = [pq.read_table(f, columns=["id", "vector"]) for f in self._files()]
        tables = [t for t in tables if t.num_rows]
        meta = {"format": FORMAT, "record": self.cache.record}
        empty = _table([], np.zeros((0, self.dim), np.float32), None, meta)
        same = empty.schema.metadata
        merged = pa.concat_tables([t.replace_schema_metadata(same) for t in [empty, *tables]])
        # A crash after the last merge but before the parts were removed leaves rows twice.
        ids = np.asarray(merged.column("id").to_pylist(), object)
        _, first = np.unique(ids, return_index=True)
        if len(first) < merged.num_rows:
            merged = merged.take(pa.array(np.sort(first)))
        _write_atomic(merged, self.out)
        for path in self.cache.folder.glob("part-*.parquet"):
            path.unlink()
        if self.cache.folder.is_dir():
            self.cache.folder.rmdir()
