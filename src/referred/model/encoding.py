"""A CondViT's own helpers: preprocessing, its sentence encoder, and the LRVSF-Benchmark
interface as functions of a model.

``encode_queries(model, images, conds)`` embeds conditioned scenes and ``encode_targets(model,
images)`` unconditioned products; both return L2-normalised float32 tensors (B, output_dim) on
the CPU, through the plain forward (the model may be training). The condition rules and the
batching are :class:`referred.query.QueryEncoder`'s, which every other caller uses too.
"""

from __future__ import annotations

from typing import Any

import torch

from referred.model.condvit import CondViT
from referred.model.text import TextEncoder, load_text_encoder
from referred.preprocess import preprocess


def preprocess_for(model: Any, images: Any) -> torch.Tensor:
    """The model's own preprocessing: images → (B, 3, R, R) float32."""
    return preprocess(images, model.config.preprocess)


def text_encoder(model: CondViT) -> TextEncoder:
    """The model's sentence encoder, loaded on first use and cached on the model."""
    if model._text_encoder is None:
        if model.config.cond_dim is None:
            raise ValueError(
                "this model is conditioned on categories only; free text is not accepted. "
                f"Valid categories: {', '.join(model.config.categories)}"
            )
        model._text_encoder = load_text_encoder(model.config.text_encoder)
    return model._text_encoder


def set_text_encoder(model: CondViT, encoder: TextEncoder) -> None:
    """Use ``encoder`` (any callable: list of str → (B, cond_dim) tensor) for texts."""
    model._text_encoder = encoder


def _encoder(model: Any, batch_size: int = 32) -> Any:
    # The rules live in referred.query (one owner for every caller); this module only offers
    # them as functions of a model. Imported lazily: referred.query sits above referred.model.
    from referred.query import QueryEncoder

    return QueryEncoder(model, fast=False, batch_size=batch_size)


def encode_conditions(model: Any, conds: Any) -> torch.Tensor | None:
    """Conditions of one kind → a LongTensor (B,) of category indices or a FloatTensor
    (B, cond_dim) of text vectors; ``None`` stays ``None`` and tensors pass through. The rules
    are :mod:`referred.query`'s (names or indices of the category table, texts)."""
    if conds is None or isinstance(conds, torch.Tensor):
        return conds
    if isinstance(conds, (str, int)):
        conds = [conds]
    enc = _encoder(model)
    conds = list(conds)
    return enc.condition_tensor(enc.conditions(conds, len(conds)))


def encode_queries(model: Any, images: Any, conds: Any, batch_size: int = 32) -> torch.Tensor:
    """Conditioned scenes → L2-normalised (B, output_dim). ``conds=None``: unconditioned."""
    return _encoder(model, batch_size).encode(images, conds)


def encode_targets(model: Any, images: Any, batch_size: int = 32) -> torch.Tensor:
    """Product images, unconditioned → L2-normalised (B, output_dim)."""
    return _encoder(model, batch_size).encode(images, None)
