"""A product's fabric over its box: pattern, print, hem band and texture, at any resolution.

Everything is laid out in box units (periods relative to the box height, print position and
size relative to the box), so the same product shows the same fabric alone at 224 px and worn
at 40 px. Camouflage blobs come from a small noise grid seeded by the product, upsampled.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from referred.data.synth.attributes import ItemSpec

#: Palette slots of the index map: main colour, secondary, third, print, trim.
MAIN, SECOND, THIRD, PRINT, TRIM = range(5)


def _darker(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor))


def palette(spec: ItemSpec) -> list[int]:
    """Flat RGB colours of the index map's slots (main, secondary, third, print, trim)."""
    third = _darker(spec.colour2, 0.6)
    colours = (spec.colour, spec.colour2, third, spec.motif_colour, spec.trim_colour)
    return [c for rgb in colours for c in rgb]


def _lattice(width: int, height: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(height, dtype=np.float32)[:, None] / period  # (h, 1)
    x = np.arange(width, dtype=np.float32)[None, :] / period  # (1, w)
    return x, y


def pattern_index(spec: ItemSpec, width: int, height: int) -> np.ndarray:
    """(height, width) uint8 map of palette slots for ``spec``'s pattern."""
    pattern = spec.pattern
    period = max(2.0, spec.period * height)
    x, y = _lattice(width, height, period)
    if pattern in ("stripes", "pinstripes"):
        theta = np.deg2rad(spec.angle)
        u = x * np.float32(np.sin(theta)) + y * np.float32(np.cos(theta)) + spec.phase
        mask = (u % 1.0) < (0.5 if pattern == "stripes" else 0.14)
    elif pattern == "dots":
        fx, fy = (x + spec.phase) % 1.0 - 0.5, (y + 0.5 * (np.floor(x + spec.phase) % 2)) % 1.0
        mask = fx * fx + (fy - 0.5) ** 2 < 0.07
    elif pattern == "checks":
        mask = (np.floor(x + spec.phase) + np.floor(y)) % 2 == 1
    elif pattern == "plaid":
        h = ((y + spec.phase) % 1.0) < 0.3
        v = ((x + spec.phase * 0.7) % 1.0) < 0.3
        return np.broadcast_to((h.astype(np.uint8) + v), (height, width)).astype(np.uint8)
    elif pattern == "two-tone":
        mask = x * period >= width * (0.3 + 0.4 * spec.phase)
    elif pattern == "zigzag":
        tri = np.abs(x % 1.0 - 0.5)
        mask = ((y + tri + spec.phase) % 1.0) < 0.45
    elif pattern == "camo":
        grid = np.random.default_rng(spec.seed).random((5, 5), dtype=np.float32)
        blobs = Image.fromarray((grid * 255).astype(np.uint8), "L").resize(
            (width, height), Image.Resampling.BILINEAR
        )
        levels = np.asarray(blobs)
        return ((levels > 110).astype(np.uint8) + (levels > 170)).astype(np.uint8)
    else:  # plain and floral (floral is drawn on top)
        return np.zeros((height, width), dtype=np.uint8)
    return np.broadcast_to(mask, (height, width)).astype(np.uint8)


def _motif_points(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "star":
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return [(cx + a * np.cos(t), cy - a * np.sin(t)) for a, t in zip(rad, ang)]
    if kind == "heart":
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        hx, hy = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
        return [(cx + r * a / 16, cy - r * b / 16) for a, b in zip(hx, hy)]
    if kind == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if kind == "triangle":
        return [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]
    w = 0.35 * r  # cross
    return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
            (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
            (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w)]  # fmt: skip


def _draw_motif(draw: ImageDraw.ImageDraw, spec: ItemSpec, width: int, height: int) -> None:
    cx, cy = spec.motif_xy[0] * width, spec.motif_xy[1] * height
    r = max(1.0, spec.motif_size * height / 2)
    if spec.motif == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=PRINT)
    elif spec.motif == "bars":
        for k in range(3):
            y0 = cy - r + k * 0.75 * r
            draw.rectangle((cx - r, y0, cx + r * (1 - 0.3 * k), y0 + 0.4 * r), fill=PRINT)
    elif spec.motif == "flower":
        _flower(draw, cx, cy, r, PRINT, SECOND)
    else:
        draw.polygon(_motif_points(spec.motif, cx, cy, r), fill=PRINT)


def _flower(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, petal: int, heart: int):
    p = 0.45 * r
    for t in np.arange(5) * 2 * np.pi / 5:
        px, py = cx + 0.55 * r * np.cos(t), cy + 0.55 * r * np.sin(t)
        draw.ellipse((px - p, py - p, px + p, py + p), fill=petal)
    draw.ellipse((cx - p, cy - p, cx + p, cy + p), fill=heart)


def _floral(spec: ItemSpec, width: int, height: int) -> np.ndarray:
    """(height, width) uint8: flowers (petals SECOND, hearts THIRD) on a half-drop grid, 0
    elsewhere; one tile drawn, then repeated."""
    step = max(4, round(spec.period * height * 1.4))
    tile = Image.new("L", (step, 2 * step), 0)
    draw = ImageDraw.Draw(tile)
    r = 0.32 * step
    for cx, cy in ((0.5, 0.5), (0.0, 1.5), (1.0, 1.5)):  # half-drop: the second row shifted
        _flower(draw, cx * step, cy * step, r, SECOND, THIRD)
    tile_arr = np.asarray(tile)
    reps = (height // (2 * step) + 2, width // step + 2)
    big = np.tile(tile_arr, reps)
    dx, dy = int(spec.phase * step), int(spec.phase * 0.5 * step)
    return big[dy : dy + height, dx : dx + width]


def fabric_index(spec: ItemSpec, width: int, height: int) -> np.ndarray:
    """(height, width) uint8 palette slots: pattern, floral, print and hem band."""
    index = pattern_index(spec, width, height)
    if spec.pattern == "floral":
        index = _floral(spec, width, height)
    hem = spec.trim == "hem"
    if spec.motif == "none" and not hem:
        return index
    img = Image.fromarray(np.ascontiguousarray(index), "L")
    draw = ImageDraw.Draw(img)
    if spec.motif != "none":
        _draw_motif(draw, spec, width, height)
    if hem:
        draw.rectangle((0, (1.0 - spec.trim_width * 1.5) * height, width, height), fill=TRIM)
    return np.asarray(img)


def texture_light(spec: ItemSpec, width: int, height: int) -> np.ndarray | None:
    """(height, width) float32 brightness factors in (0, 1] of the texture (None: smooth)."""
    kind = spec.texture
    if kind == "smooth":
        return None
    period = max(2.0, spec.texture_scale * height)
    x, y = _lattice(width, height, period)
    s = np.float32(spec.texture_strength)
    if kind == "knit":
        wave = np.abs(np.sin(np.pi * (x + 0.5 * np.floor(y)))) * ((y % 1.0) < 0.8)
    elif kind == "twill":
        wave = ((x + y) % 1.0 < 0.5).astype(np.float32) * np.ones_like(x)
    elif kind == "corduroy":
        wave = 0.5 + 0.5 * np.cos(2 * np.pi * x) * np.ones_like(y)
    elif kind == "quilted":
        u, v = (x + y) / 3.0, (x - y) / 3.0
        wave = ((np.abs(u % 1.0 - 0.5) < 0.06) | (np.abs(v % 1.0 - 0.5) < 0.06)).astype(np.float32)
        s = np.float32(min(0.45, 3 * spec.texture_strength))
    else:  # tweed: fine noise, the product's own
        noise = np.random.default_rng(spec.seed + 1).random((height, width), dtype=np.float32)
        wave = noise
    wave = np.broadcast_to(wave, (height, width))
    return (1.0 - s * wave).astype(np.float32)
