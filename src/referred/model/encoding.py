"""Embedding images and conditions with a CondViT: the LRVSF-Benchmark interface.

``encode_queries(model, images, conds)`` embeds conditioned scenes and ``encode_targets(model,
images)`` unconditioned products; both return L2-normalised float32 tensors (B, output_dim) on
the CPU. ``conds`` are category names, category indices or free texts: names and indices go
through the category table, texts through the model's sentence encoder (loaded lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from referred.categories import category_index
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


def encode_conditions(model: CondViT, conds: Any) -> torch.Tensor | None:
    """Conditions → a LongTensor (B,) of category indices or a FloatTensor (B, cond_dim).

    ``None`` stays ``None``. A category model takes category names (case-insensitive) or
    indices; a text model embeds strings with its sentence encoder (category names too).
    Tensors are passed through unchanged.
    """
    if conds is None or isinstance(conds, torch.Tensor):
        return conds
    if isinstance(conds, (str, int)):
        conds = [conds]
    conds = list(conds)
    cfg = model.config
    if not cfg.conditional:
        raise ValueError("this model has no conditioning; pass conds=None")
    if cfg.categories and all(_is_category(c, cfg.categories) for c in conds):
        idx = [c if isinstance(c, int) else category_index(c, cfg.categories) for c in conds]
        return torch.tensor(idx, dtype=torch.long)
    if cfg.cond_dim is None:
        bad = next(c for c in conds if not _is_category(c, cfg.categories))
        raise ValueError(
            f"unknown category {bad!r}; this model accepts: {', '.join(cfg.categories)}"
        )
    texts = [_check_text(c) for c in conds]
    vectors = text_encoder(model)(texts)
    return torch.as_tensor(vectors, dtype=torch.float32).reshape(len(texts), -1)


def _is_category(c: Any, categories: Sequence[str]) -> bool:
    if isinstance(c, bool):
        return False
    if isinstance(c, int):
        return 0 <= c < len(categories)
    if isinstance(c, str):
        try:
            category_index(c, tuple(categories))
        except ValueError:
            return False
        return True
    return False


def _check_text(c: Any) -> str:
    if not isinstance(c, str):
        raise TypeError(f"a condition must be a category name, an index or a text, got {c!r}")
    if not c.strip():
        raise ValueError("empty text condition; give a category or a non-empty text")
    return c


@torch.inference_mode()
def embed(model: Any, images: Any, conds: torch.Tensor | None, batch_size: int = 32) -> Any:
    """Images (paths, PIL, bytes or a pixel tensor) with condition tensors → L2-normalised
    float32 (B, output_dim) on the CPU, through ``model`` (a CondViT or its fast twin)."""
    if isinstance(images, torch.Tensor):
        pixels_all = images
        n = len(images)
    else:
        images = list(images) if not isinstance(images, (str, bytes)) else [images]
        n = len(images)
        pixels_all = None
    if conds is not None and len(conds) != n:
        raise ValueError(f"{len(conds)} conditions for {n} images")
    out = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if pixels_all is None:
            pixels = preprocess_for(model, images[start:stop])
        else:
            pixels = pixels_all[start:stop]
        c = None if conds is None else conds[start:stop].to(model.device)
        emb = model(pixels.to(model.device), c)  # (b, D)
        out.append(F.normalize(emb.float(), dim=-1).cpu())
    if not out:
        return torch.empty(0, model.config.output_dim)
    return torch.cat(out)


def encode_queries(model: CondViT, images: Any, conds: Any, batch_size: int = 32) -> torch.Tensor:
    """Conditioned scenes → L2-normalised (B, output_dim). ``conds=None``: unconditioned."""
    return embed(model, images, encode_conditions(model, conds), batch_size)


def encode_targets(model: CondViT, images: Any, batch_size: int = 32) -> torch.Tensor:
    """Product images, unconditioned → L2-normalised (B, output_dim)."""
    return embed(model, images, None, batch_size)
