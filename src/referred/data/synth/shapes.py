"""The silhouette of one garment unit (a hat, one shoe, one glove, …) of each variant.

Shapes are lists of primitives in box-normalised coordinates (x right, y down, both in [0, 1]),
so the same product looks the same alone on white and worn small in a scene. ``main``
primitives are filled with the product's fabric; ``accent`` ones with its accent colour;
``dark`` ones (handles, chains) with a darkened main colour or its hardware colour.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

# (kind, role, data): kind "poly" (points), "ellipse"/"rect" (x0, y0, x1, y1), "line" (points +
# width as the last element, a fraction of the box height)
Prim = tuple[str, str, tuple]

#: Width / height of one drawing unit of each category (paired items: one shoe, one glove).
UNIT_ASPECT: dict[str, float] = {
    "Bags": 1.5,
    "Feet": 2.1,
    "Hands": 1.05,
    "Head": 2.4,
    "Lower Body": 0.9,
    "Neck": 1.8,
    "Outwear": 1.3,
    "Upper Body": 1.9,
    "Waist": 6.6,
    "Whole Body": 0.9,
}

PAIRED = frozenset({"Feet", "Hands"})


def _mirror_x(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(1.0 - x, y) for x, y in points]


def _both_sides(left: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    return [left, _mirror_x(left)]


def _torso_shapes(variant: str) -> list[Prim]:
    if variant == "t-shirt":
        pts = [
            (0.22, 0),
            (0.78, 0),
            (1, 0.14),
            (0.9, 0.4),
            (0.77, 0.3),
            (0.76, 1),
            (0.24, 1),
            (0.23, 0.3),
            (0.1, 0.4),
            (0, 0.14),
        ]
        return [("poly", "main", tuple(pts)), ("ellipse", "accent", (0.4, -0.06, 0.6, 0.08))]
    if variant == "sweater":
        pts = [
            (0.22, 0),
            (0.78, 0),
            (0.98, 0.25),
            (1, 0.95),
            (0.86, 0.97),
            (0.78, 0.35),
            (0.76, 1),
            (0.24, 1),
            (0.22, 0.35),
            (0.14, 0.97),
            (0, 0.95),
            (0.02, 0.25),
        ]
        return [("poly", "main", tuple(pts)), ("rect", "accent", (0.24, 0.9, 0.76, 1.0))]
    pts = [
        (0.3, 0),
        (0.38, 0),
        (0.44, 0.18),
        (0.56, 0.18),
        (0.62, 0),
        (0.7, 0),
        (0.76, 1),
        (0.24, 1),
    ]
    return [("poly", "main", tuple(pts))]


def _outwear_shapes(variant: str) -> list[Prim]:
    # open fronts and a short capelet leave the garment underneath visible
    if variant == "cape":
        return [
            ("poly", "main", ((0.3, 0), (0.7, 0), (0.98, 0.3), (0.02, 0.3))),
            ("rect", "accent", (0.4, 0, 0.6, 0.06)),
        ]
    bottom = 1.0 if variant == "coat" else 0.62
    panel = [(0.18, 0), (0.37, 0), (0.37, bottom), (0.14, bottom)]
    sleeve = [(0.24, 0), (0.12, 0.03), (0, 0.74), (0.12, 0.77), (0.26, 0.22)]
    lapel = [(0.37, 0), (0.3, 0), (0.37, 0.2)]
    prims: list[Prim] = []
    for pts in (*_both_sides(panel), *_both_sides(sleeve)):
        prims.append(("poly", "main", tuple(pts)))
    prims.extend(("poly", "accent", tuple(p)) for p in _both_sides(lapel))
    return prims


def _lower_shapes(variant: str) -> list[Prim]:
    if variant in ("skirt", "long skirt"):
        bottom, flare = (0.45, 0.05) if variant == "skirt" else (0.9, 0.0)
        pts = ((0.2, 0), (0.8, 0), (1 - flare, bottom), (flare, bottom))
        return [("poly", "main", pts), ("rect", "accent", (0.2, 0, 0.8, 0.06))]
    bottom = 1.0 if variant == "trousers" else 0.4
    leg = [(0.16, 0), (0.5, 0), (0.49, 0.18), (0.43, bottom), (0.12, bottom)]
    prims: list[Prim] = [("poly", "main", tuple(p)) for p in _both_sides(leg)]
    prims.append(("rect", "accent", (0.16, 0, 0.84, 0.06)))
    return prims


def _whole_shapes(variant: str) -> list[Prim]:
    bodice = ((0.24, 0), (0.76, 0), (0.73, 0.47), (0.27, 0.47))
    prims: list[Prim] = [("poly", "main", bodice)]
    if variant == "jumpsuit":
        leg = [(0.27, 0.45), (0.5, 0.45), (0.47, 1), (0.25, 1)]
        prims += [("poly", "main", tuple(p)) for p in _both_sides(leg)]
    else:
        bottom, flare = (0.82, 0.06) if variant == "dress" else (1.0, 0.0)
        prims.append(
            ("poly", "main", ((0.27, 0.44), (0.73, 0.44), (1 - flare, bottom), (flare, bottom)))
        )
    prims.append(("rect", "accent", (0.27, 0.42, 0.73, 0.47)))
    return prims


def _head_shapes(variant: str) -> list[Prim]:
    if variant == "beanie":
        return [
            ("ellipse", "main", (0.14, 0.1, 0.86, 1.5)),
            ("rect", "accent", (0.12, 0.72, 0.88, 1)),
            ("ellipse", "accent", (0.42, 0, 0.58, 0.2)),
        ]
    if variant == "cap":
        return [
            ("ellipse", "main", (0.1, 0.2, 0.76, 1.6)),
            ("poly", "accent", ((0.6, 0.78), (1, 0.84), (1, 1), (0.6, 1))),
        ]
    if variant == "wide-brim hat":
        return [
            ("rect", "main", (0.3, 0.25, 0.7, 0.86)),
            ("ellipse", "main", (0, 0.7, 1, 1)),
            ("rect", "accent", (0.3, 0.65, 0.7, 0.77)),
        ]
    return [
        ("rect", "main", (0.3, 0, 0.7, 0.85)),
        ("rect", "main", (0.12, 0.82, 0.88, 1)),
        ("rect", "accent", (0.3, 0.62, 0.7, 0.74)),
    ]


def _neck_shapes(variant: str) -> list[Prim]:
    if variant == "scarf":
        return [
            ("rect", "main", (0.12, 0, 0.88, 0.3)),
            ("poly", "main", ((0.55, 0.2), (0.8, 0.2), (0.76, 1), (0.56, 1))),
        ]
    if variant == "necklace":
        chain = ((0.15, 0.02), (0.3, 0.5), (0.5, 0.68), (0.7, 0.5), (0.85, 0.02), 0.09)
        return [("line", "dark", chain), ("ellipse", "main", (0.36, 0.55, 0.64, 0.95))]
    return [
        ("poly", "main", ((0.08, 0.15), (0.5, 0.5), (0.08, 0.85))),
        ("poly", "main", ((0.92, 0.15), (0.5, 0.5), (0.92, 0.85))),
        ("ellipse", "accent", (0.4, 0.35, 0.6, 0.65)),
    ]


def _waist_shapes(variant: str) -> list[Prim]:
    if variant == "belt":
        return [("rect", "main", (0, 0.15, 1, 0.85)), ("rect", "accent", (0.42, 0, 0.58, 1))]
    return [
        ("rect", "main", (0, 0.05, 1, 0.95)),
        ("poly", "accent", ((0.7, 0.5), (0.85, 1), (0.95, 1))),
    ]


def _feet_shapes(variant: str) -> list[Prim]:
    if variant == "boots":
        pts = ((0.05, 0), (0.45, 0), (0.5, 0.55), (1, 0.68), (1, 1), (0.05, 1))
        return [("poly", "main", pts), ("rect", "accent", (0.05, 0.86, 1, 1))]
    if variant == "heels":
        pts = ((0, 0.35), (0.45, 0.5), (1, 0.8), (1, 0.95), (0.25, 0.75), (0, 0.75))
        return [("poly", "main", pts), ("rect", "accent", (0.02, 0.7, 0.14, 1))]
    pts = ((0, 0.3), (0.55, 0.3), (1, 0.65), (1, 1), (0, 1))
    return [("poly", "main", pts), ("rect", "accent", (0, 0.84, 1, 1))]


def _hands_shapes(variant: str) -> list[Prim]:
    if variant == "mittens":
        return [
            ("ellipse", "main", (0.08, 0.18, 0.84, 1)),
            ("ellipse", "main", (0.6, 0.3, 1, 0.62)),
            ("rect", "accent", (0.14, 0, 0.8, 0.24)),
        ]
    if variant == "gloves":
        prims: list[Prim] = [("rect", "main", (0.12, 0.3, 0.8, 0.72))]
        prims += [("rect", "main", (x, 0.66, x + 0.14, 1)) for x in (0.12, 0.3, 0.48, 0.66)]
        prims += [("poly", "main", ((0.8, 0.35), (1, 0.5), (0.8, 0.6)))]
        return prims
    return [
        ("rect", "main", (0.18, 0, 0.74, 0.62)),
        ("ellipse", "main", (0.08, 0.45, 0.9, 1)),
        ("rect", "accent", (0.18, 0, 0.74, 0.08)),
    ]


def _bag_shapes(variant: str) -> list[Prim]:
    if variant == "tote bag":
        handle = ((0.25, 0.38), (0.3, 0.02), (0.7, 0.02), (0.75, 0.38), 0.07)
        return [
            ("line", "dark", handle),
            ("poly", "main", ((0.1, 0.35), (0.9, 0.35), (1, 1), (0, 1))),
        ]
    if variant == "clutch":
        return [
            ("rect", "main", (0, 0.42, 1, 0.9)),
            ("poly", "accent", ((0, 0.42), (1, 0.42), (0.5, 0.68))),
        ]
    if variant == "backpack":
        return [
            ("ellipse", "main", (0.14, 0.08, 0.86, 0.4)),
            ("rect", "main", (0.14, 0.24, 0.86, 1)),
            ("rect", "accent", (0.28, 0.58, 0.72, 0.9)),
        ]
    strap = ((0.2, 0.62), (0.5, 0.02), (0.8, 0.62), 0.06)
    return [("line", "dark", strap), ("ellipse", "main", (0.04, 0.45, 0.96, 1))]


_SHAPES = {
    "Bags": _bag_shapes,
    "Feet": _feet_shapes,
    "Hands": _hands_shapes,
    "Head": _head_shapes,
    "Lower Body": _lower_shapes,
    "Neck": _neck_shapes,
    "Outwear": _outwear_shapes,
    "Upper Body": _torso_shapes,
    "Waist": _waist_shapes,
    "Whole Body": _whole_shapes,
}


@functools.cache
def shape_of(category: str, variant: str) -> tuple[Prim, ...]:
    """The primitives of one unit of ``variant`` (a variant of ``category``)."""
    return tuple(_SHAPES[category](variant))


@functools.cache
def extent(category: str, variant: str) -> tuple[float, float, float, float]:
    """The box-unit bounds (x0, y0, x1, y1) of a unit's primitives, clamped to the box."""
    xs: list[float] = []
    ys: list[float] = []
    for kind, _, data in shape_of(category, variant):
        points = data[:-1] if kind == "line" else data
        if kind in ("ellipse", "rect"):
            points = ((data[0], data[1]), (data[2], data[3]))
        xs += [p[0] for p in points]
        ys += [p[1] for p in points]
    return (max(0.0, min(xs)), max(0.0, min(ys)), min(1.0, max(xs)), min(1.0, max(ys)))
