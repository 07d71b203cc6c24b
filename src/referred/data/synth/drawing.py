"""Draw one garment unit (a hat, one shoe, one glove, …) into a box, in a given look.

The silhouette (``shapes``) is reshaped by the product's taper, filled with its fabric
(``fabric``: pattern, print, hem band, texture), shaded as the style says, then trimmed
(piping, buttons) and outlined or hatched. The unit's mask comes back, so a scene knows which
pixels each item covers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from referred.data.synth.attributes import RGB, ItemSpec
from referred.data.synth.fabric import fabric_index, palette, texture_light
from referred.data.synth.shapes import PAIRED, UNIT_ASPECT, Prim, shape_of
from referred.data.synth.styles import Look, hatch_tile, shade_map

__all__ = ["PAIRED", "UNIT_ASPECT", "draw_unit"]

Point = tuple[float, float]
#: Where buttons go (x in box units) per category.
BUTTON_X = {"Upper Body": 0.5, "Whole Body": 0.5, "Outwear": 0.34}


def _darker(rgb: RGB, factor: float) -> RGB:
    return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor))


def _fabric(spec: ItemSpec, look: Look, x0: int, y0: int, w: int, h: int):
    """The unit's fabric (RGB image) and its shadow side (bool array or None)."""
    img = Image.frombytes("P", (w, h), fabric_index(spec, w, h).tobytes())
    img.putpalette(palette(spec))
    img = img.convert("RGB")
    light = texture_light(spec, w, h)
    shading, shadow = shade_map(look, x0, y0, w, h)
    if shading is not None:
        light = shading if light is None else light * shading
    if light is not None:
        grey = Image.fromarray((light * 255).astype(np.uint8), "L")
        img = ImageChops.multiply(img, Image.merge("RGB", (grey, grey, grey)))
    return img, shadow


def draw_unit(
    canvas: Image.Image,
    spec: ItemSpec,
    box: tuple[float, float, float, float],
    look: Look,
    rng: np.random.Generator,
    *,
    mirror: bool = False,
) -> tuple[Image.Image, tuple[int, int]]:
    """Draw one unit of ``spec`` into ``box`` = (x0, y0, x1, y1) pixels of ``canvas``.

    Returns the unit's mask (L, box-sized: 255 where the unit is drawn) and its top-left
    corner in ``canvas``. ``rng`` only jitters sketchy lines.
    """
    x0, y0 = round(box[0]), round(box[1])
    w, h = max(1, round(box[2] - box[0])), max(1, round(box[3] - box[1]))
    prims = shape_of(spec.category, spec.variant)
    taper, squeeze = spec.taper, 1.0 - abs(spec.taper)

    def px(x: float, y: float) -> Point:
        x = 0.5 + (x - 0.5) * (squeeze + taper * (2 * y - 1))
        return ((1.0 - x if mirror else x) * w, y * h)

    def on_canvas(x: float, y: float) -> Point:
        sx, sy = px(x, y)
        return (sx + x0, sy + y0)

    mask = Image.new("L", (w, h), 0)
    mdraw = ImageDraw.Draw(mask)
    for kind, role, data in prims:
        if role == "main":
            _primitive(mdraw, kind, data, px, 255, h)
    fabric, shadow = _fabric(spec, look, x0, y0, w, h)
    draw = ImageDraw.Draw(canvas)
    solid = look.line_width and not look.style.wobble
    rim = _grown(mask, look.line_width) if solid else None
    if rim is not None:  # ink under the fill, the silhouette grown: only a rim stays visible
        lw = look.line_width
        canvas.paste(_ink(spec, look), (x0 - lw, y0 - lw), rim)
    canvas.paste(fabric, (x0, y0), mask)
    if spec.trim == "piping":
        piping = max(1, round(spec.trim_width * 0.4 * h))
        for kind, role, data in prims:
            if role == "main" and kind != "line":
                _outline(draw, kind, data, on_canvas, spec.trim_colour, piping)
    full = mask.copy()
    fdraw = ImageDraw.Draw(full)
    dark = spec.hardware if spec.category == "Neck" else _darker(spec.colour, 0.55)
    for kind, role, data in prims:
        if role != "main":
            fill = spec.accent if role == "accent" else dark
            _primitive(draw, kind, data, on_canvas, fill, h)
            _primitive(fdraw, kind, data, px, 255, h)
    if rim is not None:
        lw = look.line_width
        full.paste(255, (0, 0), rim.crop((lw, lw, lw + w, lw + h)))
    if spec.buttons and spec.category in BUTTON_X:
        _buttons(draw, spec, mask, px(BUTTON_X[spec.category], 0)[0], (x0, y0))
    if look.style.hatching and shadow is not None:
        _hatch(canvas, full, shadow, _darker(spec.colour, 0.35), x0, y0)
    if solid:
        _outlines(draw, prims, spec, look, on_canvas, rng, ("accent",), look.line_width)
    elif look.line_width:
        roles = ("main", "accent")
        _outlines(draw, prims, spec, look, on_canvas, rng, roles, look.line_width)
    return full, (x0, y0)


def _buttons(
    draw: ImageDraw.ImageDraw, spec: ItemSpec, mask: Image.Image, x: float, at: tuple[int, int]
) -> None:
    """A column of buttons at ``x`` (box pixels), only where the fabric is."""
    w, h = mask.size
    r = max(1.0, 0.022 * h)
    top, bottom = 0.12, 0.45 if spec.category == "Whole Body" else 0.85
    for k in range(spec.buttons):
        y = h * (top + (bottom - top) * (k + 0.5) / spec.buttons)
        if 0 <= x < w and mask.getpixel((int(x), int(y))):
            cx, cy = x + at[0], y + at[1]
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=spec.hardware)


def _hatch(
    canvas: Image.Image, mask: Image.Image, shadow: np.ndarray, ink: RGB, x0: int, y0: int
) -> None:
    h, w = shadow.shape
    tile = hatch_tile(max(canvas.size))
    xs, ys = max(0, x0), max(0, y0)
    lines = np.zeros((h, w), dtype=bool)
    sub = tile[ys : ys + h, xs : xs + w]
    lines[: sub.shape[0], : sub.shape[1]] = sub
    ink_mask = (lines & shadow & (np.asarray(mask) > 0)).astype(np.uint8) * 200
    canvas.paste(ink, (x0, y0), Image.fromarray(ink_mask, "L"))


def _outlines(
    draw: ImageDraw.ImageDraw,
    prims: tuple[Prim, ...],
    spec: ItemSpec,
    look: Look,
    on_canvas: Callable[[float, float], Point],
    rng: np.random.Generator,
    roles: tuple[str, ...],
    width: int,
) -> None:
    style = look.style
    ink = _ink(spec, look)
    passes = 2 if style.wobble else 1
    for _ in range(passes):
        if style.wobble:
            jx, jy = (float(v) for v in rng.normal(0, 0.012, size=2))

            def shaky(x: float, y: float, jx=jx, jy=jy) -> Point:
                return on_canvas(x + jx, y + jy)

            to = shaky
        else:
            to = on_canvas
        for kind, role, data in prims:
            if kind != "line" and role in roles:
                _outline(draw, kind, data, to, ink, width)


def _ink(spec: ItemSpec, look: Look) -> RGB:
    tone = look.style.line_tone
    return _darker(spec.colour, tone) if tone else (20, 18, 22)


def _grown(mask: Image.Image, by: int) -> Image.Image:
    """``mask`` dilated by ``by`` pixels (8 shifted copies), on a canvas ``by`` larger all round."""
    w, h = mask.size
    grown = Image.new("L", (w + 2 * by, h + 2 * by), 0)
    for dx in (0, by, 2 * by):
        for dy in (0, by, 2 * by):
            grown.paste(255, (dx, dy), mask)
    return grown


def _outline(draw: ImageDraw.ImageDraw, kind: str, data: tuple, to, colour: RGB, width: int):
    if kind == "poly":
        draw.polygon([to(*p) for p in data], outline=colour, width=width)
        return
    (ax, ay), (bx, by) = to(data[0], data[1]), to(data[2], data[3])
    rect = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    if kind == "ellipse":
        draw.ellipse(rect, outline=colour, width=width)
    else:
        draw.rectangle(rect, outline=colour, width=width)


def _primitive(draw: ImageDraw.ImageDraw, kind: str, data: tuple, px, fill, h: int) -> None:
    if kind == "poly":
        draw.polygon([px(*p) for p in data], fill=fill)
    elif kind == "line":
        width = max(1, round(data[-1] * h))
        draw.line([px(*p) for p in data[:-1]], fill=fill, width=width, joint="curve")
    else:
        (ax, ay), (bx, by) = px(data[0], data[1]), px(data[2], data[3])
        rect = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
        if kind == "ellipse":
            draw.ellipse(rect, fill=fill)
        else:
            draw.rectangle(rect, fill=fill)
