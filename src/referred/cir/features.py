"""Frozen features of a FashionIQ-layout set: CondViT image vectors and sentence vectors.

Both training and the benchmark work on vectors only: each image is embedded once by the
model's own query path (a product photo, unconditioned, as the catalog is), each distinct
text once by the sentence encoder. :class:`VectorCache` keeps them in an ``.npz`` keyed by a
fingerprint of the model (or the encoder's name) and saves as it goes, so an interrupted run
embeds only what is left.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
SAVE_EVERY = 512


class VectorCache:
    """name → float32 vector, stored in ``path`` (None: memory only) under ``key``; a file
    written under another key is ignored and replaced."""

    def __init__(self, path: str | os.PathLike | None, key: str) -> None:
        self.path = None if path is None else Path(path)
        self.key = key
        self.vectors: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    if str(z["key"]) == key:
                        self.vectors = dict(zip(z["names"].tolist(), z["vectors"]))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring the unreadable vector cache %s (%s)", self.path, exc)

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.vectors)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(
            tmp,
            key=np.array(self.key),
            names=np.array(names),
            vectors=np.stack([self.vectors[n] for n in names]).astype(np.float32),
        )
        os.replace(tmp, self.path)

    def fill(
        self,
        names: Sequence[str],
        embed: Callable[[list[str]], Any],
        batch: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors of ``names`` (n, D) in order, embedding (``embed(list) → (b, D)``) the
        missing ones ``batch`` at a time and saving every :data:`SAVE_EVERY` new vectors or
        a quarter of the cache, whichever is more."""
        todo = [n for n in dict.fromkeys(names) if n not in self.vectors]
        since_save = 0
        try:
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                out = np.asarray(torch.as_tensor(embed(chunk)).float().cpu(), dtype=np.float32)
                self.vectors.update(zip(chunk, out))
                since_save += len(chunk)
                if progress is not None:
                    progress(len(chunk))
                # a growing interval: saving costs the whole file, so O(n) writes in all
                if since_save >= max(SAVE_EVERY, len(self.vectors) // 4):
                    self.save()
                    since_save = 0
        finally:  # interrupted or done: keep what was embedded
            if since_save:
                self.save()
        if not names:
            return np.zeros((0, 0), np.float32)
        return np.stack([self.vectors[n] for n in names])


def model_key(model: Any) -> str:
    """What identifies a model's vectors: its weights' fingerprint and preprocessing."""
    from referred.search.provenance import fingerprint

    return f"{fingerprint(model)}:{model.config.preprocess}"


def image_vectors(
    encoder: Any,
    paths: Callable[[str], Path],
    names: Sequence[str],
    cache: VectorCache,
    progress: bool = False,
) -> np.ndarray:
    """CondViT vectors (n, D) of the images ``names`` (files from ``paths(name)``), each
    embedded as a catalog product: unconditioned, through the model's query path."""
    todo = len([n for n in dict.fromkeys(names) if n not in cache.vectors])
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=todo, desc="embedding images", unit="img")
    try:
        return cache.fill(
            names,
            lambda chunk: encoder.encode_targets([str(paths(n)) for n in chunk]),
            batch=encoder.batch_size,
            progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()


def text_vectors(
    encode: Callable[[list[str]], Any], texts: Sequence[str], cache: VectorCache
) -> np.ndarray:
    """Sentence vectors (n, T) of ``texts``, each distinct text encoded once."""
    return cache.fill(texts, encode, batch=256)
