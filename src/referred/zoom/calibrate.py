"""The close-up's margin chosen by recall: which window around a located box retrieves best.

A CondViT trained on close-ups of exact boxes loses much more recall when the window around a
box is too large (other items enter it, the asked one shrinks) than when it is a little too
small: on the tenth session's hybrid-lite0, true boxes 1.3 × too large gave R@1 41.4% and
0.8 × 57.6%, against 59.0% exact (docs/benchmarks.md, "What the locator's errors cost"). A
locator's boxes err both ways, so the margin that retrieves best around *located* boxes may
be smaller than the one the close-ups were cut with. :func:`calibrate_grow` measures, for
each candidate margin, R@1 of the located close-ups of validation pairs against the
validation products' photos, and keeps the best (the training margin unless another gains a
point); :func:`referred.zoom.fit.fit_locator` calls it and the locator saves the margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from referred.zoom.boxes import GROW
from referred.zoom.crop import close_up

#: Margins tried (share of the box's longer side on every side; close-up side 1.1–1.6 ×).
GROWS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
#: R@1 another margin must gain over the training one to replace it: 5 of 500 validation
#: pairs. A model trained on exact close-ups chose 0.1 over 0.25 by 0.2 points on validation
#: and lost 1.2 on test; the jittered one gained 2.8 on validation and 2.8 on test with 0.2.
MIN_GAIN = 0.01


def recall_at_1(queries: np.ndarray, targets: np.ndarray, truth: np.ndarray) -> float:
    """Share of queries (Q, D) whose most similar target (T, D), by inner product, is
    ``truth[q]``: the benchmark's R@1 and tie rule (:mod:`referred.eval.metrics`: a target
    tied with an earlier one ranks after it)."""
    from referred.eval.metrics import ranks_from_scores, recall_at_k

    if len(queries) == 0:
        raise ValueError("no queries to measure")
    return recall_at_k(ranks_from_scores(queries @ targets.T, np.asarray(truth)), 1)


def best_grow(
    recalls: dict[float, float], prefer: float = GROW, min_gain: float = MIN_GAIN
) -> float:
    """The margin of highest recall, unless ``prefer`` (the training margin) was measured and
    is within ``min_gain`` of it: a few hundred validation pairs rank margins closer than
    that by chance. Among equals, the one closest to ``prefer`` (then the smaller)."""
    if not recalls:
        raise ValueError("no margin was measured")
    top = max(recalls.values())
    if prefer in recalls and top - recalls[prefer] < min_gain:
        return prefer
    return min((g for g, r in recalls.items() if r == top), key=lambda g: (abs(g - prefer), g))


def model_encoder(model: Any, batch: int = 64) -> Callable[..., np.ndarray]:
    """``encode(images, categories or None)`` → (N, D) float32 vectors of ``model``, whole
    images (the close-up is cut by the caller, not by a locator), ``batch`` at a time."""
    from referred.query import QueryEncoder

    encoder = QueryEncoder(model, zoom=False)

    def encode(images: Sequence[Any], categories: Sequence[str] | None) -> np.ndarray:
        parts = []
        for i in range(0, len(images), batch):
            conds = None if categories is None else list(categories[i : i + batch])
            with torch.no_grad():
                parts.append(encoder.encode(list(images[i : i + batch]), conds).float().numpy())
        return np.concatenate(parts)

    return encode


def calibrate_grow(
    encode: Callable[..., np.ndarray],
    scenes: Sequence[Any],
    categories: Sequence[str],
    boxes: torch.Tensor,
    products: Sequence[Any],
    truth: Sequence[int],
    grows: Sequence[float] = GROWS,
) -> tuple[float, dict[float, float]]:
    """(the best margin, R@1 for each of ``grows``) of the close-ups around ``boxes`` (P, 4),
    the located ``(cx, cy, w, h)`` of each decoded scene in ``scenes``, embedded by
    ``encode(images, categories)`` (:func:`model_encoder`), against the product photos
    ``products`` embedded by ``encode(products, None)`` (pair ``p``'s product is
    ``products[truth[p]]``)."""
    if not (len(scenes) == len(categories) == len(boxes) == len(truth)) or not len(scenes):
        raise ValueError("scenes, categories, boxes and truth must be as many, and not none")
    if not grows or min(grows) < 0:
        raise ValueError(f"grows must be non-negative margins, got {list(grows)}")
    targets, truth = encode(products, None), np.asarray(truth)
    recalls = {}
    for grow in grows:
        cut = [close_up(s, b, grow) for s, b in zip(scenes, boxes.tolist())]
        recalls[float(grow)] = recall_at_1(encode(cut, categories), targets, truth)
    return best_grow(recalls), recalls
