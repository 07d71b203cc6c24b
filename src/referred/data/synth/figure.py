"""The figure that wears an outfit: body build, skin, hair, pose, and where each item goes.

Coordinates are in units of the figure's height ``H``: x centred on the body and y from the
top of the head (0) to the soles (1); x is then stretched by :data:`WIDEN` (a stocky cartoon
figure shows its garments larger in a small image). A :class:`Body` is drawn per scene: its
build widens the torso items, its arms place the hands (and a carried bag), its stance and
step place the feet, so every category has a slot that follows the pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from referred.data.synth.attributes import RGB
from referred.data.synth.shapes import UNIT_ASPECT

#: Horizontal stretch of the figure (the unit aspects of ``shapes`` include it).
WIDEN = 1.5
#: Half-width kept inside the frame when shifting the figure, in units of H (a bag may be cut).
HALF_WIDTH = 0.3 * WIDEN
#: Categories whose width follows the body's build.
BUILT = frozenset({"Upper Body", "Outwear", "Whole Body", "Lower Body", "Waist"})

#: Skin tones (interpolated between neighbours) and mannequin finishes.
SKIN = ((242, 210, 182), (225, 175, 135), (190, 140, 100), (150, 100, 65), (95, 62, 40))
MANNEQUIN = ((236, 234, 230), (200, 200, 202), (60, 60, 64))
HAIR = ((30, 25, 20), (90, 60, 30), (200, 160, 90), (140, 50, 30), (160, 160, 160))
HAIR_STYLES = ("short", "long", "bun", "bob", "none")

Box = tuple[float, float, float, float]
Slot = tuple[float, float, float, bool]  # centre x, top y, height, mirrored


@dataclass(frozen=True)
class Body:
    """One figure's build and pose (angles in radians from hanging straight down)."""

    build: float
    head: float
    skin: RGB
    hair: RGB
    hair_style: str
    arms: tuple[float, float]
    stance: float
    step: float
    bag_in_hand: bool

    def shoulder(self, side: int) -> tuple[float, float]:
        return (0.1 * self.build * side, 0.18)

    def hand(self, side: int) -> tuple[float, float]:
        """Centre of the hand on ``side`` (-1 left, 1 right of the image)."""
        a = self.arms[0 if side < 0 else 1]
        sx, sy = self.shoulder(side)
        return (sx + side * 0.33 * np.sin(a) / WIDEN, sy + 0.33 * np.cos(a))

    def ankle(self, side: int) -> tuple[float, float]:
        lift = self.step if side > 0 else 0.0
        return (self.stance * side, 0.92 - lift)


def sample_body(rng: np.random.Generator) -> Body:
    """A random figure: build, head size, skin (or mannequin), hair, arms, stance, step."""
    if rng.random() < 0.12:
        skin = MANNEQUIN[int(rng.integers(len(MANNEQUIN)))]
        hair_style = "none"
    else:
        t = rng.uniform(0, len(SKIN) - 1)
        lo, hi, f = SKIN[int(t)], SKIN[min(int(t) + 1, len(SKIN) - 1)], t - int(t)
        skin = (
            round(lo[0] + f * (hi[0] - lo[0])),
            round(lo[1] + f * (hi[1] - lo[1])),
            round(lo[2] + f * (hi[2] - lo[2])),
        )
        hair_style = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
    return Body(
        build=float(rng.uniform(0.86, 1.18)),
        head=float(rng.uniform(0.9, 1.12)),
        skin=skin,
        hair=HAIR[int(rng.integers(len(HAIR)))],
        hair_style=hair_style,
        arms=(float(rng.uniform(0.12, 0.75)), float(rng.uniform(0.12, 0.75))),
        stance=float(rng.uniform(0.045, 0.075)),
        step=float(rng.uniform(0.0, 0.025)) if rng.random() < 0.4 else 0.0,
        bag_in_hand=bool(rng.random() < 0.5),
    )


def slots(body: Body, category: str) -> tuple[Slot, ...]:
    """Where units of ``category`` go on ``body``: (centre x, top y, height, mirrored)."""
    if category == "Head":
        return ((0.0, 0.14 - 0.175 * body.head, 0.1 * body.head, False),)
    if category == "Hands":
        (lx, ly), (rx, ry) = body.hand(-1), body.hand(1)
        return ((lx, ly - 0.03, 0.085, True), (rx, ry - 0.03, 0.085, False))
    if category == "Feet":
        (lx, ly), (rx, ry) = body.ankle(-1), body.ankle(1)
        return ((lx - 0.005, ly - 0.025, 0.065, True), (rx + 0.005, ry - 0.025, 0.065, False))
    if category == "Bags":
        if body.bag_in_hand:
            hx, hy = body.hand(1)
            return ((hx + 0.01, hy - 0.01, 0.17, False),)
        return ((0.1 * body.build + 0.16, 0.45, 0.17, False),)
    fixed = {
        "Neck": (0.0, 0.12, 0.16),
        "Upper Body": (0.0, 0.16, 0.3),
        "Outwear": (0.0, 0.155, 0.46),
        "Waist": (0.0, 0.44, 0.045),
        "Lower Body": (0.0, 0.46, 0.45),
        "Whole Body": (0.0, 0.16, 0.62),
    }
    cx, top, h = fixed[category]
    return ((cx, top, h, False),)


@dataclass(frozen=True)
class Placement:
    """A body placed in the image: centre x, top y and height, in pixels."""

    cx: float
    top: float
    height: float

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * WIDEN * self.height, self.top + y * self.height)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        return (*self.xy(x0, y0), *self.xy(x1, y1))


def unit_boxes(fig: Placement, body: Body, category: str, width: float) -> list[tuple[Box, bool]]:
    """Pixel boxes (and mirroring) of the units of an item of ``category``, ``width`` wide."""
    aspect = UNIT_ASPECT[category] * width * (body.build if category in BUILT else 1.0)
    out = []
    for cx, top, h, mirror in slots(body, category):
        w = h * aspect / WIDEN
        out.append((fig.box(cx - w / 2, top, cx + w / 2, top + h), mirror))
    return out


def draw_body(draw: ImageDraw.ImageDraw, fig: Placement, body: Body) -> None:
    """Skin and hair of ``body`` at ``fig`` (garments go on top)."""
    skin, hair = body.skin, body.hair
    limb = max(1, round(0.05 * fig.height))
    head_r, head_cy = 0.065 * body.head, 0.14 - 0.07 * body.head
    if body.hair_style == "long":
        draw.rectangle(fig.box(-0.07 * body.head, head_cy, 0.07 * body.head, 0.25), fill=hair)
    for side in (-1, 1):
        hx, hy = body.hand(side)
        draw.line([fig.xy(*body.shoulder(side)), fig.xy(hx, hy)], fill=skin, width=limb)
        ax, ay = body.ankle(side)
        draw.line(
            [fig.xy(0.05 * side * body.build, 0.45), fig.xy(ax, ay)],
            fill=skin,
            width=round(limb * 1.4),
        )
        draw.ellipse(fig.box(hx - 0.025, hy - 0.01, hx + 0.025, hy + 0.04), fill=skin)
    b = body.build
    draw.polygon(
        [fig.xy(-0.11 * b, 0.165), fig.xy(0.11 * b, 0.165), fig.xy(0.09 * b, 0.46),
         fig.xy(-0.09 * b, 0.46)],
        fill=skin,
    )  # fmt: skip
    draw.rectangle(fig.box(-0.022, 0.11, 0.022, 0.17), fill=skin)
    if body.hair_style in ("short", "bun", "bob", "long"):
        grow = 0.02 if body.hair_style == "bob" else 0.0
        draw.ellipse(
            fig.box(-head_r, head_cy - head_r, head_r, head_cy + head_r * 0.9 + grow), fill=hair
        )
    if body.hair_style == "bun":
        r = 0.03 * body.head
        draw.ellipse(
            fig.box(-r, head_cy - head_r - 1.5 * r, r, head_cy - head_r + 0.5 * r), fill=hair
        )
    face = 0.9 * head_r
    draw.ellipse(fig.box(-face, head_cy - face * 0.85, face, head_cy + face * 1.1), fill=skin)
