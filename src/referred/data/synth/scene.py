"""Compose images: a product alone (SIMPLE), or an outfit worn by a figure (COMPLEX).

A scene draws a background, a figure in a random build and pose, every item of the outfit in
its slot, sometimes a prop in front, then the camera's finish; it keeps a label map of which
item owns each pixel, so it knows each item's box and how much of it is visible, in the
full image and in a partial crop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from referred.data.synth.attributes import ItemSpec
from referred.data.synth.backgrounds import background, ground_shadow, prop
from referred.data.synth.drawing import PAIRED, UNIT_ASPECT, draw_unit
from referred.data.synth.figure import HALF_WIDTH, WIDEN, Placement, draw_body, sample_body
from referred.data.synth.figure import unit_boxes as body_unit_boxes
from referred.data.synth.shapes import extent
from referred.data.synth.styles import Look, finish, sample_look, wash

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
#: A prop may not leave any item less visible than this (share of its pixels).
MIN_VISIBLE = 0.5
PROP_PROBABILITY = 0.3

IntBox = tuple[int, int, int, int]
#: Owner index of garments that are not products (label 254 in the label map).
FILLER = 253


@dataclass(frozen=True)
class SceneImage:
    """An encoded scene, its style, and for each item visible in it (indices into the
    outfit): its box and its units' boxes (x0, y0, x1, y1 pixels, end exclusive, in the
    written image) and the share of its pixels left visible (not covered, not cut off)."""

    jpeg: bytes
    partial: bool
    visible: tuple[int, ...]
    style: str = ""
    boxes: tuple[IntBox, ...] = ()
    unit_boxes: tuple[tuple[IntBox, ...], ...] = ()
    visibility: tuple[float, ...] = ()


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """JPEG bytes of ``img`` (deterministic for a given Pillow)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render_simple(
    spec: ItemSpec,
    size: int,
    rng: np.random.Generator,
    style: str = "flat",
    quality: tuple[int, int] = (90, 90),
) -> tuple[Image.Image, Look]:
    """``spec`` alone as a product photo: light backdrop, its silhouette centred and filling
    60-84 % of a ``size``² image (the longer side)."""
    look = sample_look(style, size, rng, quality, mild=True)
    if rng.random() < 0.6:
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
    else:
        tone = int(rng.integers(226, 252))
        tint = (int(v) for v in rng.integers(-6, 7, size=3))
        canvas = Image.new("RGB", (size, size), tuple(min(255, tone + t) for t in tint))
    ex0, ey0, ex1, ey1 = extent(spec.category, spec.variant)
    aspect = UNIT_ASPECT[spec.category] * spec.width  # of the drawing box
    units = 2 if spec.category in PAIRED else 1
    gap = 0.15 if units == 2 else 0.0
    seen = aspect * (ex1 - ex0) / (ey1 - ey0)  # drawn width / height of one unit
    total_w = seen * units + gap * seen * (units - 1)  # in units of the drawn height
    drawn_h = rng.uniform(0.6, 0.84) * size / max(total_w, 1.0)
    h = drawn_h / (ey1 - ey0)
    w = aspect * h
    drawn_w = w * (ex1 - ex0)
    jx, jy = (float(v) * size for v in rng.uniform(-0.04, 0.04, size=2))
    left = (size - drawn_w * units - gap * drawn_w * (units - 1)) / 2 + jx
    top = (size - drawn_h) / 2 + jy - ey0 * h
    shadow = rng.random() < 0.4
    silhouette = Image.new("L", (size, size), 0)
    for i in range(units):
        mirror = units == 2 and i == 0
        x0 = left + i * drawn_w * (1 + gap) - ((1.0 - ex1) if mirror else ex0) * w
        box = (x0, top, x0 + w, top + h)
        mask, corner = draw_unit(canvas, spec, box, look, rng, mirror=mirror)
        silhouette.paste(255, corner, mask)
    bbox = silhouette.getbbox()
    if shadow and bbox is not None:
        half = 0.5 * (bbox[2] - bbox[0])
        ground_shadow(canvas, (bbox[0] + bbox[2]) / 2, bbox[3], half, rng, silhouette)
    return finish(canvas, look, rng), look


class _Owners:
    """Which item owns each pixel (0: none, i + 1: item i, 255: a prop), and item extents."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.label = np.zeros((size, size), dtype=np.uint8)
        self.area: dict[int, int] = {}
        self.units: dict[int, list[IntBox]] = {}

    def paint(self, i: int, mask: Image.Image, x0: int, y0: int) -> None:
        """Item ``i`` (``FILLER``: a garment that is not a product) covers ``mask`` at (x0, y0)."""
        m = np.asarray(mask) > 0  # (h, w)
        h, w = m.shape
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(self.size, x0 + w), min(self.size, y0 + h)
        if xb <= xa or yb <= ya:
            return
        part = m[ya - y0 : yb - y0, xa - x0 : xb - x0]
        self.label[ya:yb, xa:xb][part] = i + 1
        if i == FILLER:
            return
        self.area[i] = self.area.get(i, 0) + int(part.sum())
        bbox = mask.getbbox()
        if bbox is not None:
            box = (x0 + bbox[0], y0 + bbox[1], x0 + bbox[2], y0 + bbox[3])
            self.units.setdefault(i, []).append(_clip(box, self.size))

    def visible(self, label: np.ndarray | None = None) -> np.ndarray:
        """Visible pixels per label value (256,)."""
        return np.bincount((self.label if label is None else label).ravel(), minlength=256)

    def shares(self, n: int, counts: np.ndarray) -> list[float]:
        return [float(counts[i + 1]) / max(1, self.area.get(i, 0)) for i in range(n)]


def _clip(box: tuple[float, float, float, float], size: int) -> IntBox:
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(size, math.ceil(box[2])), min(size, math.ceil(box[3]))
    return (x0, y0, max(x0, x1), max(y0, y1))


def _union(boxes: Sequence[IntBox]) -> IntBox:
    if not boxes:
        return (0, 0, 0, 0)
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _try_prop(canvas: Image.Image, owners: _Owners, n: int, floor: int, rng) -> None:
    layer, mask = prop(owners.size, rng, floor)
    covered = owners.label.copy()
    covered[np.asarray(mask) > 0] = 255
    if min(owners.shares(n, owners.visible(covered))) >= MIN_VISIBLE:
        canvas.paste(layer, (0, 0), mask)
        owners.label = covered


def render_scene(
    items: Sequence[ItemSpec],
    size: int,
    rng: np.random.Generator,
    *,
    quality: int | tuple[int, int],
    partial: bool,
    style: str = "flat",
    fillers: Sequence[ItemSpec] = (),
) -> list[SceneImage]:
    """One scene of ``items`` worn together, plus (if ``partial``) one crop showing ≥ 3 items.

    The figure (60-97 % of the height) is placed, posed, dressed, maybe partly hidden by a
    prop, lit and maybe mirrored; the crop (upper or lower body) is kept only when at least
    three items keep half their visible pixels in it.
    """
    quality = (quality, quality) if isinstance(quality, int) else quality
    look = sample_look(style, size, rng, quality)
    canvas, floor = background(size, rng)
    canvas = wash(canvas, look)
    body = sample_body(rng)
    height = size * rng.uniform(0.6, 0.97)
    slack = max(0.0, size / 2 - HALF_WIDTH * height)
    fig = Placement(
        cx=size / 2 + rng.uniform(-slack, slack),
        top=rng.uniform(0.0, max(0.0, size - 1.035 * height)) + 0.035 * height,
        height=height,
    )
    if rng.random() < 0.6:
        ground_shadow(canvas, fig.cx, fig.top + 0.985 * height, 0.16 * WIDEN * height, rng)
    draw_body(ImageDraw.Draw(canvas), fig, body)
    owners = _Owners(size)
    worn = [(i, item) for i, item in enumerate(items)] + [(FILLER, f) for f in fillers]
    for i, item in sorted(worn, key=lambda pair: DRAW_ORDER.index(pair[1].category)):
        for box, mirror in body_unit_boxes(fig, body, item.category, item.width):
            mask, (x0, y0) = draw_unit(canvas, item, box, look, rng, mirror=mirror)
            owners.paint(i, mask, x0, y0)
    if rng.random() < PROP_PROBABILITY:
        _try_prop(canvas, owners, len(items), floor, rng)
    canvas = finish(canvas, look, rng)
    flip = bool(rng.integers(2))
    counts = owners.visible()
    everyone = tuple(range(len(items)))
    whole = (0.0, 0.0, float(size), float(size))
    out = [_image(canvas, owners, everyone, owners.shares(len(items), counts), whole, flip, look)]
    if partial:
        crop = _crop_box(fig, size, upper=bool(rng.integers(2)))
        x0, y0, x1, y1 = crop
        inside = owners.visible(owners.label[y0:y1, x0:x1])
        kept = [i for i in everyone if inside[i + 1] >= 0.5 * max(1, counts[i + 1])]
        if len(kept) >= 3:
            part = canvas.resize((size, size), Image.Resampling.BILINEAR, box=crop)
            share = [float(inside[i + 1]) / max(1, owners.area.get(i, 0)) for i in kept]
            out.append(_image(part, owners, tuple(kept), share, crop, flip, look, partial=True))
    return out


def _image(
    img: Image.Image,
    owners: _Owners,
    visible: tuple[int, ...],
    shares: Sequence[float],
    frame: tuple[float, float, float, float],
    flip: bool,
    look: Look,
    partial: bool = False,
) -> SceneImage:
    """The written image of ``frame`` (a region of the scene resized to the output side)."""
    size = img.size[0]
    scale = size / (frame[2] - frame[0])

    def to_image(b: IntBox) -> IntBox:
        x0, y0 = (b[0] - frame[0]) * scale, (b[1] - frame[1]) * scale
        x1, y1 = (b[2] - frame[0]) * scale, (b[3] - frame[1]) * scale
        if flip:
            x0, x1 = size - x1, size - x0
        return _clip((x0, y0, x1, y1), size)

    def inside(i: int) -> tuple[IntBox, ...]:
        boxes = (to_image(b) for b in owners.units.get(i, []))
        return tuple(b for b in boxes if b[2] > b[0] and b[3] > b[1])

    units = tuple(inside(i) for i in visible)
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return SceneImage(
        jpeg=encode_jpeg(img, look.quality),
        partial=partial,
        visible=visible,
        style=look.style.name,
        boxes=tuple(_union(u) for u in units),
        unit_boxes=units,
        visibility=tuple(round(s, 4) for s in shares),
    )


def _crop_box(fig: Placement, size: int, upper: bool) -> tuple[int, int, int, int]:
    side = min(size, round(0.65 * fig.height))
    y0 = round(fig.top + (-0.05 if upper else 0.42) * fig.height)
    x0 = round(fig.cx - side / 2)
    x0 = min(max(x0, 0), size - side)
    y0 = min(max(y0, 0), size - side)
    return (x0, y0, x0 + side, y0 + side)
