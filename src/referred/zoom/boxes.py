"""Boxes of zoom: pure conversions between an image's pixels and its padded square.

Every query is padded to a centred square before it is resized (:mod:`referred.preprocess`),
so the locator sees, and predicts in, fractions of that square. A box here is either pixels
of the image, ``(x0, y0, x1, y1)``, or a centre and size in fractions of the padded square,
``(cx, cy, w, h)``. The close-up is the square window around a box that the CondViT embeds
instead of the whole scene.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

#: The close-up's margin: a quarter of the box's longer side on every side (side 1.5 × it).
GROW = 0.25
#: Smallest close-up side, in pixels of the image.
MIN_SIDE = 8.0

Box = tuple[float, float, float, float]


def to_square(box: Sequence[float], size: tuple[int, int]) -> Box:
    """Pixel box ``(x0, y0, x1, y1)`` of an image of ``size`` (w, h) → ``(cx, cy, w, h)``
    fractions of its padded square."""
    w, h = size
    side = float(max(w, h))
    ox, oy = (side - w) / 2, (side - h) / 2
    x0, y0, x1, y1 = (float(v) for v in box)
    return (
        ((x0 + x1) / 2 + ox) / side,
        ((y0 + y1) / 2 + oy) / side,
        (x1 - x0) / side,
        (y1 - y0) / side,
    )


def from_square(frac: Sequence[float], size: tuple[int, int]) -> Box:
    """``(cx, cy, w, h)`` fractions of the padded square → a pixel box of the image (it may
    reach outside the image; :func:`close_up_window` keeps the window inside)."""
    w, h = size
    side = float(max(w, h))
    ox, oy = (side - w) / 2, (side - h) / 2
    cx, cy, bw, bh = (float(v) * side for v in frac)
    return cx - bw / 2 - ox, cy - bh / 2 - oy, cx + bw / 2 - ox, cy + bh / 2 - oy


def close_up_window(
    box: Sequence[float], size: tuple[int, int], grow: float = GROW
) -> tuple[int, int, int, int]:
    """The square window ``(left, top, right, bottom)`` in pixels around pixel box ``box``:
    side ``(1 + 2·grow) × max(box w, box h)`` (at least :data:`MIN_SIDE`, at most the image's
    shorter side), centred on the box and shifted to lie inside the image."""
    if grow < 0:
        raise ValueError(f"grow must be >= 0, got {grow}")
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = size
    side = min(max(max(x1 - x0, y1 - y0) * (1 + 2 * grow), MIN_SIDE), float(w), float(h))
    left = min(max((x0 + x1) / 2 - side / 2, 0.0), w - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0.0), h - side)
    return round(left), round(top), round(left + side), round(top + side)


def jitter_box(box: Sequence[float], jitter: float, key: str, seed: int = 0) -> Box:
    """Pixel box ``box`` moved and resized as a locator's error would: its sides scaled by one
    factor ``exp(u)``, ``u`` uniform in ``[-jitter, jitter]``, its centre shifted on each axis
    by up to ``jitter / 2`` of its longer side. Deterministic in ``(seed, key)`` (e.g. the
    image's URL and product id), so a copy is the same whatever order it is written in.
    ``jitter = 0``: the box itself."""
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if jitter == 0:
        return x0, y0, x1, y1
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    u, dx, dy = rng.uniform(-1.0, 1.0, 3)
    scale, long = math.exp(u * jitter), max(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2 + dx * jitter / 2 * long
    cy = (y0 + y1) / 2 + dy * jitter / 2 * long
    hw, hh = (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when both are empty)."""
    ix = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    iy = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def centre_cell(frac: Sequence[float], grid: int) -> int:
    """Index (row-major) of the cell of a ``grid × grid`` map holding the box's centre."""
    col = min(max(int(frac[0] * grid), 0), grid - 1)
    row = min(max(int(frac[1] * grid), 0), grid - 1)
    return row * grid + col


def square_cover(frac: Sequence[float], grid: int) -> np.ndarray:
    """(grid, grid) float64: the share of each cell of a grid over the padded square that box
    ``(cx, cy, w, h)`` (fractions of the square) covers (rows are y)."""
    edges = np.linspace(0.0, 1.0, grid + 1)
    cx, cy, w, h = (float(v) for v in frac)

    def along(centre: float, extent: float) -> np.ndarray:  # (grid,)
        lo, hi = centre - extent / 2, centre + extent / 2
        return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None) * grid

    return np.outer(along(cy, h), along(cx, w))


def cell_coverage(box: Sequence[float], size: tuple[int, int], grid: int) -> np.ndarray:
    """(grid, grid): the fraction of each cell of a grid over the image's padded square that
    pixel box ``(x0, y0, x1, y1)`` covers (rows are y)."""
    return square_cover(to_square(box, size), grid)


def mass_in_box(amap: np.ndarray, box: Sequence[float], size: tuple[int, int]) -> float:
    """Share of a (g, g) map over the padded square (an attention overlay) that lies inside
    pixel box ``box`` of an image of ``size``, each cell counted by the part the box covers."""
    amap = np.asarray(amap, np.float64)
    return float((amap * cell_coverage(box, size, amap.shape[0])).sum() / amap.sum())
