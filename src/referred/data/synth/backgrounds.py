"""Where the figure stands: studio sweeps, rooms, streets, clutter, wallpaper; and props in
front of it that hide part of an outfit.

Every function draws from the scene's generator; nothing here knows about products.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw

RGB = tuple[int, int, int]
KINDS = ("studio", "room", "outdoor", "clutter", "wallpaper")


def _colour(rng: np.random.Generator, lo: int = 40, hi: int = 240) -> RGB:
    r, g, b = (int(v) for v in rng.integers(lo, hi, size=3))
    return (r, g, b)


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(min(255, int(c * factor)) for c in rgb)  # type: ignore[return-value]


def _vertical(size: int, top: RGB, bottom: RGB) -> Image.Image:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]  # (S, 1)
    a, b = np.array(top, np.float32), np.array(bottom, np.float32)
    column = (a + (b - a) * t).astype(np.uint8)[:, None, :]  # (S, 1, 3)
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(column, (size, size, 3))), "RGB")


def _studio(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    base = _colour(rng, 150, 250) if rng.random() < 0.7 else _colour(rng, 60, 200)
    canvas = _vertical(size, _shade(base, 1.05), _shade(base, 0.85))
    return canvas, int(size * rng.uniform(0.8, 0.95))


def _room(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    wall = _colour(rng, 120, 235)
    canvas = Image.new("RGB", (size, size), wall)
    draw = ImageDraw.Draw(canvas)
    floor = int(size * rng.uniform(0.72, 0.9))
    for _ in range(int(rng.integers(1, 4))):  # windows, frames, doors, shelves
        x0 = float(rng.uniform(-0.1, 0.9)) * size
        y0 = float(rng.uniform(0.05, 0.5)) * size
        w, h = (float(v) * size for v in rng.uniform(0.1, 0.35, size=2))
        frame = _colour(rng, 30, 220)
        draw.rectangle((x0, y0, x0 + w, min(y0 + h, floor)), fill=frame)
        inset = max(1, size // 64)
        draw.rectangle(
            (x0 + inset, y0 + inset, x0 + w - inset, min(y0 + h, floor) - inset),
            fill=_colour(rng, 90, 250),
        )
    draw.rectangle((0, floor, size, size), fill=_colour(rng, 50, 200))
    draw.line((0, floor, size, floor), fill=_shade(wall, 0.6), width=max(1, size // 100))
    return canvas, floor


def _outdoor(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    sky = (int(rng.integers(110, 190)), int(rng.integers(160, 215)), int(rng.integers(210, 250)))
    canvas = _vertical(size, _shade(sky, 0.9), _shade(sky, 1.1))
    draw = ImageDraw.Draw(canvas)
    horizon = int(size * rng.uniform(0.45, 0.7))
    x = -float(rng.uniform(0, 0.2)) * size
    while x < size:  # buildings or trees along the horizon
        w = float(rng.uniform(0.12, 0.3)) * size
        top = horizon - float(rng.uniform(0.1, 0.4)) * size
        if rng.random() < 0.5:
            draw.rectangle((x, top, x + w, horizon), fill=_colour(rng, 70, 220))
        else:
            draw.ellipse(
                (x, top, x + w, horizon + w * 0.3), fill=_shade(_colour(rng, 40, 140), 0.8)
            )
        x += w * float(rng.uniform(0.8, 1.2))
    ground = _colour(rng, 70, 200)
    draw.rectangle((0, horizon, size, size), fill=ground)
    return canvas, int(size * rng.uniform(0.82, 0.95))


def _clutter(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    canvas = Image.new("RGB", (size, size), _colour(rng, 90, 225))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(8, 15))):
        colour = _colour(rng)
        x0, y0 = (float(v) for v in rng.uniform(-0.2, 1.0, size=2) * size)
        w, h = (float(v) for v in rng.uniform(0.08, 0.45, size=2) * size)
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=colour, width=max(1, size // 32))
    floor = int(size * rng.uniform(0.75, 0.9))
    draw.rectangle((0, floor, size, size), fill=_colour(rng, 40, 160))
    return canvas, floor


def _wallpaper(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    a, b = _colour(rng, 120, 240), _colour(rng, 100, 240)
    period = float(rng.uniform(0.04, 0.15)) * size
    i = np.arange(size, dtype=np.float32)
    if rng.random() < 0.5:
        mask = ((i[None, :] / period) % 1.0 < 0.5) & np.ones((size, 1), dtype=bool)
    else:
        mask = ((i[None, :] // period) + (i[:, None] // period)) % 2 == 1
    rgb = np.where(mask[..., None], np.array(a, np.uint8), np.array(b, np.uint8))
    canvas = Image.fromarray(rgb.astype(np.uint8), "RGB")
    floor = int(size * rng.uniform(0.75, 0.92))
    ImageDraw.Draw(canvas).rectangle((0, floor, size, size), fill=_colour(rng, 40, 170))
    return canvas, floor


_MAKERS = {
    "studio": _studio,
    "room": _room,
    "outdoor": _outdoor,
    "clutter": _clutter,
    "wallpaper": _wallpaper,
}


def background(size: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
    """A random background of one of :data:`KINDS` and the y of its floor line."""
    kind = KINDS[int(rng.choice(len(KINDS), p=(0.3, 0.2, 0.2, 0.15, 0.15)))]
    return _MAKERS[kind](size, rng)


def ground_shadow(
    canvas: Image.Image,
    cx: float,
    y: float,
    half: float,
    rng: np.random.Generator,
    exclude: Image.Image | None = None,
) -> None:
    """A soft dark ellipse on the floor at (``cx``, ``y``), ``half`` pixels wide each side,
    except where ``exclude`` (an L mask of the canvas' size) is set."""
    h = max(2.0, 0.18 * half)
    x0, y0 = max(0, int(cx - half)), max(0, int(y - h))
    x1, y1 = min(canvas.width, int(cx + half) + 2), min(canvas.height, int(y + h) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    strength = int(rng.integers(40, 90))
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)  # only the ellipse's region
    ImageDraw.Draw(mask).ellipse((cx - half - x0, y - h - y0, cx + half - x0, y + h - y0),
                                 fill=strength)  # fmt: skip
    if exclude is not None:
        mask = ImageChops.subtract(mask, exclude.crop((x0, y0, x1, y1)))
    canvas.paste((20, 20, 25), (x0, y0), mask)


def prop(size: int, rng: np.random.Generator, floor: int) -> tuple[Image.Image, Image.Image]:
    """A foreground prop (plant, box, railing, table edge): its RGB layer and its mask."""
    layer = Image.new("RGB", (size, size), (0, 0, 0))
    mask = Image.new("L", (size, size), 0)
    draw, mdraw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    colour = _colour(rng, 30, 220)
    kind = int(rng.integers(4))
    side = float(rng.uniform(-0.1, 0.75)) * size
    if kind == 0:  # plant in a pot
        w = float(rng.uniform(0.12, 0.25)) * size
        top = size - float(rng.uniform(0.15, 0.3)) * size
        shapes = [("rect", (side, top, side + w, size))]
        leaf = _shade(_colour(rng, 40, 140), 0.9)
        for _ in range(5):
            lx, ly = (
                side + float(rng.uniform(-0.3, 1.0)) * w,
                top - float(rng.uniform(0.05, 0.3)) * size,
            )
            shapes.append(("leaf", (lx, ly, lx + 0.45 * w, ly + 0.3 * size)))
        for kind_, rect in shapes:
            draw.ellipse(rect, fill=leaf) if kind_ == "leaf" else draw.rectangle(rect, fill=colour)
            (mdraw.ellipse if kind_ == "leaf" else mdraw.rectangle)(rect, fill=255)
    elif kind == 1:  # box or stool on the floor
        w, h = (float(v) * size for v in rng.uniform(0.12, 0.3, size=2))
        rect = (side, max(floor, size * 0.8) - h, side + w, size)
        draw.rectangle(rect, fill=colour)
        mdraw.rectangle(rect, fill=255)
    elif kind == 2:  # railing: a bar and posts
        y = size - float(rng.uniform(0.12, 0.25)) * size
        bar = max(2, size // 50)
        rects = [(0, y, size, y + bar)]
        step = float(rng.uniform(0.1, 0.2)) * size
        rects += [(x, y, x + bar, size) for x in np.arange(side % step, size, step)]
        for rect in rects:
            draw.rectangle(rect, fill=colour)
            mdraw.rectangle(rect, fill=255)
    else:  # table edge coming in from one side
        w = float(rng.uniform(0.15, 0.35)) * size
        left = bool(rng.integers(2))
        y = float(rng.uniform(0.55, 0.8)) * size
        rect = (0, y, w, size) if left else (size - w, y, size, size)
        draw.rectangle(rect, fill=colour)
        draw.rectangle((rect[0], y, rect[2], y + max(2, size // 40)), fill=_shade(colour, 0.7))
        mdraw.rectangle(rect, fill=255)
    return layer, mask
