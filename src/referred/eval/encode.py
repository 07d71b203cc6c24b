"""The model seam of the benchmark: anything with ``encode_queries`` / ``encode_targets``.

:class:`Benchmarkable` is the LRVSF-Benchmark interface; :func:`embed_in_batches` runs a list
of images through it in batches and returns one float32 numpy array. Reading the dataset is
someone else's job: images here are whatever the model accepts (paths, PIL images, tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Benchmarkable(Protocol):
    """A model the benchmark can embed with.

    ``encode_queries(images, conds)`` embeds complex images under their conditions (category
    names or texts), ``encode_targets(images)`` embeds simple images without condition. Both
    return ``(n, d)`` L2-normalised numpy arrays or torch tensors.
    """

    def encode_queries(self, images: Sequence[Any], conds: Sequence[Any]) -> Any: ...

    def encode_targets(self, images: Sequence[Any]) -> Any: ...


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array or torch tensor (any device, any float dtype) as float32 numpy."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def embed_in_batches(
    model: Benchmarkable,
    images: Sequence[Any],
    conds: Sequence[Any] | None = None,
    *,
    batch_size: int = 64,
    check_norm: float | None = 1e-3,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed ``images`` in batches: queries when ``conds`` is given, targets otherwise.

    Args:
        model: a :class:`Benchmarkable`.
        images: ``n`` images in the form the model accepts.
        conds: ``n`` conditions (query mode), or ``None`` (target mode).
        batch_size: images per model call.
        check_norm: fail when a row's norm differs from 1 by more than this; ``None`` skips.
        progress: called with the number of images embedded so far.

    Returns:
        ``(n, d)`` float32 array.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if conds is not None and len(conds) != len(images):
        raise ValueError(f"{len(images)} images but {len(conds)} conditions")
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if conds is None:
            emb = to_numpy(model.encode_targets(batch))
        else:
            emb = to_numpy(model.encode_queries(batch, conds[start : start + batch_size]))
        if emb.ndim != 2 or emb.shape[0] != len(batch):
            raise ValueError(f"the model returned shape {emb.shape} for {len(batch)} images")
        if check_norm is not None:
            norms = np.linalg.norm(emb, axis=1)
            if np.any(np.abs(norms - 1) > check_norm):
                raise ValueError(
                    f"the model's embeddings are not L2-normalised (norms {norms.min():.4g}.."
                    f"{norms.max():.4g}); normalise in encode_*"
                )
        out.append(emb)
        if progress is not None:
            progress(start + len(batch))
    if not out:
        raise ValueError("no images to embed")
    return np.concatenate(out)
