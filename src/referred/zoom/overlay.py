"""The overlay of a zooming model: where its locator found the asked item, finer than its grid.

A zooming model embeds the close-up of the box its locator predicts, so the page's overlay
shows that estimate: the locator's heat map over the g × g cells, each cell split into
``scale`` × ``scale`` sub-cells, kept where the predicted box covers them (by the share it
covers). A 14 × 14 heat map alone cannot hold half its mass inside a belt 10 px tall in a
256 px scene (one cell is 18 px); the box, predicted at sub-cell precision, can.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from referred.zoom.boxes import square_cover

#: Sub-cells per cell side: 14 × 14 locator cells → a 56 × 56 overlay.
SCALE = 4
#: Least share of the heat inside the box for the box to shape the overlay.
MIN_KEPT = 1e-3


def box_cover(boxes: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side, side) float64: :func:`referred.zoom.boxes.square_cover` of each box
    ``(cx, cy, w, h)`` (fractions; rows are y)."""
    covers = [square_cover(box, side) for box in boxes.tolist()]
    return torch.from_numpy(np.stack(covers)) if covers else torch.zeros(0, side, side).double()


def located_map(logits: torch.Tensor, boxes: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Locator outputs (heat logits (B, g²), boxes (B, 4)) → (B, g·scale, g·scale) float32
    summing to 1: the heat map's mass inside the predicted box (the heat map itself where
    the box holds under ``MIN_KEPT`` of it: box and heat disagree, show the heat)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    b, n = logits.shape
    g = math.isqrt(n)
    if g * g != n or boxes.shape != (b, 4):
        raise ValueError(
            f"expected logits (B, g²) and boxes (B, 4), got {logits.shape}, {boxes.shape}"
        )
    heat = logits.double().softmax(1).view(b, 1, g, g)
    fine = F.interpolate(heat, scale_factor=scale, mode="nearest")[:, 0] / scale**2
    kept = fine * box_cover(boxes, g * scale)
    mass = kept.sum((1, 2), keepdim=True)
    return torch.where(mass >= MIN_KEPT, kept / mass.clamp(min=MIN_KEPT), fine).float()
