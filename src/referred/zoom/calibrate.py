"""The close-ups a query is embedded as, chosen by recall around located boxes.

A CondViT trained on close-ups of exact boxes loses much more recall when the window around a
box is too large (other items enter it, the asked one shrinks) than when it is a little too
small: on the tenth session's hybrid-lite0, true boxes 1.3 × too large gave R@1 41.4% and
0.8 × 57.6%, against 59.0% exact (docs/benchmarks.md, "What the locator's errors cost"). A
locator's boxes err both ways, so one margin around *located* boxes trades one error for the
other, and the mean of the close-ups at two margins (each maybe mirrored) retrieves better
than either (:mod:`referred.zoom.views`). :func:`calibrate_views` measures R@1 of each
candidate (one margin or two, plain or mirrored) on the located close-ups of validation
pairs against the validation products' photos and keeps the best (one close-up at the
training margin unless another gains a point); :func:`referred.zoom.fit.fit_locator` calls
it and the locator saves the views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from referred.zoom.boxes import GROW
from referred.zoom.views import Views, candidates, pool

#: Margins tried (share of the box's longer side on every side; close-up side 1.1–1.6 ×).
GROWS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
#: Close-ups per query calibration may choose (each one more forward of the CondViT).
MAX_VIEWS = 4
#: What is kept unless another candidate gains :data:`MIN_GAIN`: one close-up at the
#: training margin.
DEFAULT = Views((GROW,))
#: R@1 another candidate must gain over the default to replace it: 5 of 500 validation
#: pairs. A model trained on exact close-ups chose margin 0.1 over 0.25 by 0.2 points on
#: validation and lost 1.2 on test; the jittered one gained 2.8 on validation and 2.8 on test
#: with 0.2.
MIN_GAIN = 0.01


def recall_at_1(queries: np.ndarray, targets: np.ndarray, truth: np.ndarray) -> float:
    """Share of queries (Q, D) whose most similar target (T, D), by inner product, is
    ``truth[q]``: the benchmark's R@1 and tie rule (:mod:`referred.eval.metrics`: a target
    tied with an earlier one ranks after it)."""
    from referred.eval.metrics import ranks_from_scores, recall_at_k

    if len(queries) == 0:
        raise ValueError("no queries to measure")
    return recall_at_k(ranks_from_scores(queries @ targets.T, np.asarray(truth)), 1)


def best_views(
    recalls: Mapping[Views, float], prefer: Views = DEFAULT, min_gain: float = MIN_GAIN
) -> Views:
    """The views of highest recall, unless ``prefer`` (one close-up at the training margin)
    was measured and is within ``min_gain`` of it: a few hundred validation pairs rank views
    closer than that by chance. Among equals, the fewest close-ups, then the margins closest
    to ``prefer``'s (then the smaller)."""
    if not recalls:
        raise ValueError("no views were measured")
    top = max(recalls.values())
    if prefer in recalls and top - recalls[prefer] < min_gain:
        return prefer
    anchor = prefer.grows[0]

    def order(v: Views) -> tuple:
        return v.count, sum(abs(g - anchor) for g in v.grows), v.grows

    return min((v for v, r in recalls.items() if r == top), key=order)


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


def calibrate_views(
    encode: Callable[..., np.ndarray],
    scenes: Sequence[Any],
    categories: Sequence[str],
    boxes: torch.Tensor,
    products: Sequence[Any],
    truth: Sequence[int],
    grows: Sequence[float] = GROWS,
    max_views: int = MAX_VIEWS,
) -> tuple[Views, dict[Views, float]]:
    """(the best views, R@1 of each of :func:`referred.zoom.views.candidates` of ``grows``
    with at most ``max_views`` close-ups) around ``boxes`` (P, 4), the located ``(cx, cy, w,
    h)`` of each decoded scene in ``scenes``, embedded by ``encode(images, categories)``
    (:func:`model_encoder`) and pooled as the query path pools them, against the product
    photos ``products`` embedded by ``encode(products, None)`` (pair ``p``'s product is
    ``products[truth[p]]``). Each margin's close-ups (and their mirrors) are embedded once."""
    if not (len(scenes) == len(categories) == len(boxes) == len(truth)) or not len(scenes):
        raise ValueError("scenes, categories, boxes and truth must be as many, and not none")
    if not grows or min(grows) < 0:
        raise ValueError(f"grows must be non-negative margins, got {list(grows)}")
    tried = candidates(grows, max_views)
    targets, truth = encode(products, None), np.asarray(truth)
    vectors: dict[tuple[float, bool], torch.Tensor] = {}
    for grow in sorted({g for v in tried for g in v.grows}):
        each = Views((grow,), flip=any(v.flip for v in tried))  # the margin, maybe mirrored
        cuts = [each.cut(s, b) for s, b in zip(scenes, boxes.tolist())]
        for i, part in enumerate(each.parts()):
            vectors[part] = torch.from_numpy(encode([c[i] for c in cuts], categories))
    recalls = {}
    for views in tried:
        pooled = pool(torch.stack([vectors[part] for part in views.parts()])).numpy()
        recalls[views] = recall_at_1(pooled, targets, truth)
    return best_views(recalls), recalls
