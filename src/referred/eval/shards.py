"""Resumable embedding of a long item stream into fixed-size ``.npy`` shards.

A folder holds ``meta.json`` (what made the embeddings: model digest, conditioning, shard
size), and per shard ``shard_NNNNN.npy`` (``(n, d)`` float32) plus ``shard_NNNNN.npz`` (the
items' keys and categories, and whether the stream ended in this shard). Both are written
atomically, the ``.npz`` last, so a shard counts as done only once both exist; a killed run
re-embeds at most the shard it was in. Reused shards cost no reading of the item stream: the
stream is advanced only when a shard has to be embedded.

Shard ``i`` holds stream positions ``[i * S, (i + 1) * S)``, so asking for more items later
(a larger distractor count) extends the cache instead of redoing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from referred.eval.sources import npy_blocks

FORMAT = 1


@dataclass(frozen=True)
class EmbedItem:
    """One image to embed: its key (product id or distractor label), the image (anything the
    encode function accepts), its category index (``-1``: unknown) and its condition."""

    key: str
    image: Any
    category: int = -1
    cond: Any = None


Encode = Callable[[Sequence[EmbedItem]], np.ndarray]


class CacheMismatchError(ValueError):
    """The cache folder was made by another model or other settings."""


@dataclass(frozen=True)
class ShardSet:
    """Finished shards covering the first ``len(keys)`` items of a stream."""

    paths: tuple[Path, ...]
    sizes: tuple[int, ...]
    keys: np.ndarray  # (n,) str
    categories: np.ndarray  # (n,) int64
    exhausted: bool  # the stream ended before the requested count

    def __len__(self) -> int:
        return int(self.keys.size)

    def blocks(
        self, limit: int | None = None, block_size: int = 65_536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``((b, d) float32, (b,) int)`` blocks of the first ``limit`` rows (a block
        source for :func:`referred.eval.evaluate`); one block in memory at a time."""
        left = len(self) if limit is None else min(limit, len(self))
        start = 0
        for path, size in zip(self.paths, self.sizes):
            if left <= 0:
                return
            cats = self.categories[start : start + size]
            yield from npy_blocks(path, cats, block_size, limit=left)
            start += size
            left -= size

    def load(self) -> np.ndarray:
        """All rows as one ``(n, d)`` float32 array (queries and targets: a few thousand)."""
        parts = [np.load(p) for p, s in zip(self.paths, self.sizes) if s]
        if not parts:
            raise ValueError("no embeddings in the cache (no items were read)")
        return np.concatenate(parts).astype(np.float32, copy=False)


def _save_atomic(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


class ShardCache:
    """One folder of shards for one item stream and one encoder.

    Args:
        folder: created if absent.
        fingerprint: JSON-able description of the encoder and settings; a folder made with
            another fingerprint raises :class:`CacheMismatchError` (never silently mixed).
        shard_size: items per shard.
    """

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any], shard_size: int = 4096):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.folder = Path(folder)
        self.shard_size = shard_size
        meta = {"format": FORMAT, "shard_size": shard_size, **fingerprint}
        meta_path = self.folder / "meta.json"
        if meta_path.is_file():
            found = json.loads(meta_path.read_text(encoding="utf-8"))
            if found != meta:
                diff = sorted(k for k in set(found) | set(meta) if found.get(k) != meta.get(k))
                raise CacheMismatchError(
                    f"{self.folder} holds embeddings made with other settings (differs in: "
                    f"{', '.join(diff)}); use another output folder or delete this one"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def _paths(self, i: int) -> tuple[Path, Path]:
        return self.folder / f"shard_{i:05d}.npy", self.folder / f"shard_{i:05d}.npz"

    def _done(self, i: int) -> tuple[np.ndarray, np.ndarray, bool] | None:
        emb_path, meta_path = self._paths(i)
        if not (emb_path.is_file() and meta_path.is_file()):
            return None
        with np.load(meta_path, allow_pickle=False) as z:
            return z["keys"], z["categories"], bool(z["end"])

    def _write(self, i: int, items: Sequence[EmbedItem], emb: np.ndarray | None, end: bool) -> None:
        emb_path, meta_path = self._paths(i)
        if emb is None:
            emb = np.zeros((0, 0), np.float32)
        _save_atomic(emb_path, lambda f: np.save(f, np.ascontiguousarray(emb, np.float32)))
        keys = np.array([it.key for it in items], dtype=str)
        cats = np.array([it.category for it in items], dtype=np.int64)
        _save_atomic(
            meta_path, lambda f: np.savez(f, keys=keys, categories=cats, end=np.array(end))
        )

    def ensure(
        self,
        items: Iterable[EmbedItem],
        encode: Encode,
        limit: int | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> ShardSet:
        """Embed what is missing of the first ``limit`` items (``None``: all) and return the
        shards. ``encode`` maps a list of items to ``(n, d)`` embeddings; ``on_rows`` is
        called with the number of rows newly embedded or found done."""
        size = self.shard_size
        stream = iter(items)
        consumed = 0  # items taken from ``stream`` so far
        paths, sizes, keys, cats = [], [], [], []
        exhausted = False
        i = 0
        while limit is None or i * size < limit:
            want = size if limit is None else min(size, limit - i * size)
            done = self._done(i)
            if done is not None and (done[0].size == want or (done[2] and done[0].size < want)):
                k, c, end = done
            else:
                skipped = sum(1 for _ in islice(stream, i * size - consumed))
                if skipped != i * size - consumed:
                    raise ValueError(
                        f"the item stream ended at {consumed + skipped} items, but the cache in "
                        f"{self.folder} has {i * size}: the data changed; delete the cache"
                    )
                batch = list(islice(stream, want))
                consumed = i * size + len(batch)
                end = len(batch) < want
                emb = encode(batch) if batch else None
                self._write(i, batch, emb, end)
                k = np.array([it.key for it in batch], dtype=str)
                c = np.array([it.category for it in batch], dtype=np.int64)
            paths.append(self._paths(i)[0])
            sizes.append(int(k.size))
            keys.append(k)
            cats.append(c)
            if on_rows is not None:
                on_rows(int(k.size))
            i += 1
            if end:
                exhausted = True
                break
        return ShardSet(
            tuple(paths),
            tuple(sizes),
            np.concatenate(keys) if keys else np.zeros(0, str),
            np.concatenate(cats) if cats else np.zeros(0, np.int64),
            exhausted,
        )
