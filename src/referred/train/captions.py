"""Caption vectors for text conditioning: the frozen sentence encoder runs once per caption.

The encoder never trains, so every distinct caption of the training split is embedded once
before training and kept as a ``(T, cond_dim)`` float32 bank (cached on disk as ``.npy``,
keyed by the encoder and the texts); a training sample carries a bank row.

A product's candidate conditions are its category name (as text: "Bags") and its captions, one
drawn at random per sample: the paper's "the category or one of its captions" (lrvs-f.md §4)
for a model whose only condition input is text. The model then answers a bare category name as
well as a description, which is how the service sends a category to a text model.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from referred.categories import LRVSF_CATEGORIES
from referred.train.index import PairIndex
from referred.train.pairs import TextConditions

log = logging.getLogger(__name__)

TextEncoder = Callable[[Sequence[str]], torch.Tensor]


def product_texts(index: PairIndex) -> tuple[list[str], TextConditions]:
    """Distinct condition texts of the index, and each product's rows among them: its
    category name (when known) and its captions; "product" for a product with neither."""
    texts: dict[str, int] = {}
    rows: list[int] = []
    start = [0]
    for i in range(len(index)):
        cat = int(index.categories[i])
        candidates = [LRVSF_CATEGORIES[cat]] if cat >= 0 else []
        candidates += [c for c in index.product_captions(i) if c not in candidates]
        rows.extend(texts.setdefault(c, len(texts)) for c in candidates or ["product"])
        start.append(len(rows))
    return list(texts), TextConditions(np.asarray(start, np.int64), np.asarray(rows, np.int64))


def encode_texts(encoder: TextEncoder, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """``(len(texts), dim)`` float32 vectors, in batches."""
    parts = []
    for s in range(0, len(texts), batch_size):
        vec = torch.as_tensor(encoder(list(texts[s : s + batch_size]))).float().cpu()
        parts.append(vec.reshape(len(texts[s : s + batch_size]), -1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def caption_bank(
    encoder: TextEncoder, encoder_name: str, texts: Sequence[str], cache_dir: Path | None
) -> np.ndarray:
    """The vectors of ``texts``, read from / written to ``cache_dir`` when given."""
    key = hashlib.sha1(encoder_name.encode())
    for t in texts:
        key.update(t.encode() + b"\0")
    path = None if cache_dir is None else cache_dir / f"captions-{key.hexdigest()[:16]}.npy"
    if path is not None and path.is_file():
        bank = np.load(path)
        if bank.shape[0] == len(texts):
            return bank
    log.info("embedding %d distinct captions with %s (frozen)", len(texts), encoder_name)
    bank = encode_texts(encoder, texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, bank)
        tmp.replace(path)
    return bank
