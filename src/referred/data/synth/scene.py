"""Compose images: a product alone on white (SIMPLE), or an outfit worn by a figure (COMPLEX).

Figure coordinates are in units of the figure's height ``H``, x centred on the body and y from
the top of the head (0) to the soles (1); x is then stretched by :data:`WIDEN` (a stocky
cartoon figure shows its garments larger in a small image). Every category has slots there;
a product drawn in its slot covers the same body part whatever the rest of the outfit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from referred.data.synth.attributes import ItemSpec
from referred.data.synth.drawing import PAIRED, UNIT_ASPECT, draw_unit

#: category → slots ``(centre x, top y, height, mirrored)`` in figure units.
SLOTS: dict[str, tuple[tuple[float, float, float, bool], ...]] = {
    "Head": ((0.0, -0.035, 0.1, False),),
    "Neck": ((0.0, 0.12, 0.16, False),),
    "Upper Body": ((0.0, 0.16, 0.3, False),),
    "Outwear": ((0.0, 0.155, 0.46, False),),
    "Waist": ((0.0, 0.44, 0.045, False),),
    "Lower Body": ((0.0, 0.46, 0.45, False),),
    "Whole Body": ((0.0, 0.16, 0.62, False),),
    "Feet": ((-0.065, 0.895, 0.065, True), (0.065, 0.895, 0.065, False)),
    "Hands": ((-0.215, 0.47, 0.085, True), (0.215, 0.47, 0.085, False)),
    "Bags": ((0.26, 0.47, 0.17, False),),
}

#: Horizontal stretch of the figure (the unit aspects of ``drawing`` include it).
WIDEN = 1.5
#: Half-width kept inside the frame when shifting the figure, in units of H (a bag may be cut).
HALF_WIDTH = 0.3 * WIDEN

#: Back-to-front drawing order of worn categories.
DRAW_ORDER = (
    "Lower Body",
    "Upper Body",
    "Whole Body",
    "Waist",
    "Outwear",
    "Neck",
    "Head",
    "Feet",
    "Hands",
    "Bags",
)

SKIN = ((240, 205, 175), (225, 175, 135), (190, 140, 100), (150, 100, 65), (100, 65, 40))
HAIR = ((30, 25, 20), (90, 60, 30), (200, 160, 90), (140, 50, 30), (160, 160, 160))

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneImage:
    """An encoded scene and the indices (into the outfit) of the items visible in it."""

    jpeg: bytes
    partial: bool
    visible: tuple[int, ...]


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """JPEG bytes of ``img`` (deterministic for a given Pillow)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render_simple(spec: ItemSpec, size: int) -> Image.Image:
    """``spec`` alone, centred on white, filling about 80 % of a ``size``² image."""
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    aspect = UNIT_ASPECT[spec.category]
    units = 2 if spec.category in PAIRED else 1
    gap = 0.15 if units == 2 else 0.0
    total_w = aspect * units + gap * aspect  # in units of the unit height
    h = 0.8 * size / max(total_w, 1.0)
    w = aspect * h
    left = (size - (w * units + gap * w)) / 2
    top = (size - h) / 2
    for i in range(units):
        x0 = left + i * (w + gap * w)
        draw_unit(
            canvas, spec, (x0, top, x0 + w, top + h), mirror=units == 2 and i == 0, outline=h >= 20
        )
    return canvas


def _background(size: int, rng: np.random.Generator) -> Image.Image:
    base = tuple(int(v) for v in rng.integers(90, 225, size=3))
    canvas = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(8, 15))):
        colour = tuple(int(v) for v in rng.integers(40, 240, size=3))
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
    draw.rectangle((0, floor, size, size), fill=tuple(int(c * 0.7) for c in base))
    return canvas


def _draw_figure(draw: ImageDraw.ImageDraw, fig, rng: np.random.Generator) -> None:
    skin = SKIN[int(rng.integers(len(SKIN)))]
    hair = HAIR[int(rng.integers(len(HAIR)))]
    limb = max(1, round(0.05 * fig.height))
    for side in (-1, 1):
        draw.line([fig.xy(0.1 * side, 0.18), fig.xy(0.215 * side, 0.5)], fill=skin, width=limb)
        draw.line(
            [fig.xy(0.05 * side, 0.45), fig.xy(0.06 * side, 0.92)], fill=skin, width=int(limb * 1.4)
        )
        draw.ellipse(fig.box(0.215 * side - 0.025, 0.49, 0.215 * side + 0.025, 0.54), fill=skin)
    draw.polygon(
        [fig.xy(-0.11, 0.165), fig.xy(0.11, 0.165), fig.xy(0.09, 0.46), fig.xy(-0.09, 0.46)],
        fill=skin,
    )
    draw.rectangle(fig.box(-0.022, 0.12, 0.022, 0.17), fill=skin)
    draw.ellipse(fig.box(-0.065, 0.0, 0.065, 0.14), fill=hair)
    draw.ellipse(fig.box(-0.058, 0.02, 0.058, 0.145), fill=skin)


@dataclass(frozen=True)
class _Figure:
    cx: float
    top: float
    height: float

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * WIDEN * self.height, self.top + y * self.height)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        return (*self.xy(x0, y0), *self.xy(x1, y1))


def _slot_boxes(fig: _Figure, category: str) -> list[tuple[Box, bool]]:
    aspect = UNIT_ASPECT[category]
    out = []
    for cx, top, h, mirror in SLOTS[category]:
        w = h * aspect / WIDEN
        out.append((fig.box(cx - w / 2, top, cx + w / 2, top + h), mirror))
    return out


def _relight(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    gains = rng.uniform(0.75, 1.2) * rng.uniform(0.9, 1.1, size=3)  # (3,)
    lut = np.minimum(255, (np.arange(256)[None, :] * gains[:, None]).astype(np.int64))  # (3, 256)
    return img.point(lut.ravel().tolist())


def _visible_fraction(boxes: Sequence[Box], crop: Box) -> float:
    area = inside = 0.0
    for x0, y0, x1, y1 in boxes:
        area += (x1 - x0) * (y1 - y0)
        ix = max(0.0, min(x1, crop[2]) - max(x0, crop[0]))
        iy = max(0.0, min(y1, crop[3]) - max(y0, crop[1]))
        inside += ix * iy
    return inside / area if area > 0 else 0.0


def render_scene(
    items: Sequence[ItemSpec],
    size: int,
    rng: np.random.Generator,
    *,
    quality: int,
    partial: bool,
) -> list[SceneImage]:
    """One scene of ``items`` worn together, plus (if ``partial``) one crop showing ≥ 3 items.

    The figure is scaled (80–95 % of the height), shifted, re-lit and maybe mirrored; the crop
    (upper or lower body) is kept only when at least three items are half visible in it.
    """
    canvas = _background(size, rng)
    height = size * rng.uniform(0.8, 0.95)
    slack = max(0.0, size / 2 - HALF_WIDTH * height)
    fig = _Figure(
        cx=size / 2 + rng.uniform(-slack, slack),
        top=rng.uniform(0.0, max(0.0, size - 1.035 * height)) + 0.035 * height,
        height=height,
    )
    _draw_figure(ImageDraw.Draw(canvas), fig, rng)
    boxes: dict[int, list[Box]] = {}
    order = sorted(range(len(items)), key=lambda i: DRAW_ORDER.index(items[i].category))
    for i in order:
        for box, mirror in _slot_boxes(fig, items[i].category):
            draw_unit(canvas, items[i], box, mirror=mirror)
            boxes.setdefault(i, []).append(box)
    canvas = _relight(canvas, rng)
    flip = bool(rng.integers(2))
    out = [SceneImage(encode_jpeg(_flip(canvas, flip), quality), False, tuple(range(len(items))))]
    if partial:
        crop = _crop_box(fig, size, upper=bool(rng.integers(2)))
        visible = tuple(i for i in range(len(items)) if _visible_fraction(boxes[i], crop) >= 0.5)
        if len(visible) >= 3:
            part = canvas.resize((size, size), Image.Resampling.BILINEAR, box=crop)
            out.append(SceneImage(encode_jpeg(_flip(part, flip), quality), True, visible))
    return out


def _flip(img: Image.Image, flip: bool) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img


def _crop_box(fig: _Figure, size: int, upper: bool) -> Box:
    side = 0.65 * fig.height
    y0 = fig.top + (-0.05 if upper else 0.42) * fig.height
    x0 = fig.cx - side / 2
    x0 = min(max(x0, 0.0), size - side)
    y0 = min(max(y0, 0.0), size - side)
    return (x0, y0, x0 + side, y0 + side)
