"""The region of a photo a shopper points at: a box, parsed, checked and cropped.

A box is ``x0,y0,x1,y1`` (left, top, right, bottom) in one of two units, told apart by the
values: **fractions** of the image's width and height when all four lie in [0, 1], else
**pixels** of the decoded image (after EXIF rotation, as the shopper sees it). A box must have
``x0 < x1`` and ``y0 < y1``, lie inside the image, and cover at least
:data:`MIN_SIDE_PX` pixels each way; anything else is a :class:`BoxError` naming the problem.

The crop is then an ordinary query image: with a condition it is embedded conditioned,
without one unconditioned (the LRVS-F paper's "crop the item, then embed it" baseline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from referred.imageio import ImageSource, decode_image
from referred.query import QueryError

#: Smallest box side accepted, in pixels of the decoded image.
MIN_SIDE_PX = 4
FORMAT = "x0,y0,x1,y1 (fractions of the width and height in [0, 1], or pixels)"


class BoxError(QueryError):
    """A box that is malformed, empty, inverted or outside the image."""


@dataclass(frozen=True)
class Box:
    """Left, top, right, bottom: fractions when all are in [0, 1], else pixels."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def fractional(self) -> bool:
        return all(0.0 <= v <= 1.0 for v in self.values)

    @property
    def values(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in whole pixels of a ``width`` × ``height`` image (outward rounding),
        checked to lie inside it and to be at least :data:`MIN_SIDE_PX` each way."""
        if self.fractional:
            x0, y0, x1, y1 = (
                self.x0 * width,
                self.y0 * height,
                self.x1 * width,
                self.y1 * height,
            )
        else:
            x0, y0, x1, y1 = self.values
            if x1 > width or y1 > height:
                raise BoxError(
                    f"box {self} reaches outside the {width}x{height} image "
                    f"(right ≤ {width}, bottom ≤ {height} in pixels)"
                )
        left, top = math.floor(x0 + 1e-9), math.floor(y0 + 1e-9)
        right, bottom = math.ceil(x1 - 1e-9), math.ceil(y1 - 1e-9)
        if right - left < MIN_SIDE_PX or bottom - top < MIN_SIDE_PX:
            raise BoxError(
                f"box {self} is {right - left}x{bottom - top} pixels of the {width}x{height} "
                f"image; it must be at least {MIN_SIDE_PX}x{MIN_SIDE_PX}"
            )
        return left, top, right, bottom

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self.values)


def parse_box(value: Any) -> Box:
    """A :class:`Box` from ``"x0,y0,x1,y1"``, a JSON list of four numbers, four numbers, or a
    Box. Raises :class:`BoxError` naming what is wrong and the accepted form."""
    if isinstance(value, Box):
        return value
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy, torch
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        try:
            parts: Sequence[Any] = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError:
            raise BoxError(f"box {value[:60]!r} is not {FORMAT}") from None
    elif isinstance(value, Sequence):
        parts = value
    else:
        raise BoxError(f"box must be {FORMAT}, got a {type(value).__name__}")
    if not isinstance(parts, Sequence) or isinstance(parts, str) or len(parts) != 4:
        raise BoxError(f"box {str(value)[:60]!r} is not {FORMAT}: it needs four numbers")
    numbers = []
    for p in parts:
        try:
            if isinstance(p, bool):
                raise TypeError
            v = float(p.strip() if isinstance(p, str) else p)
        except (TypeError, ValueError):
            raise BoxError(f"box {str(value)[:60]!r} is not {FORMAT}: {p!r} is no number") from None
        if not math.isfinite(v):
            raise BoxError(f"box {str(value)[:60]!r} holds {p!r}; the values must be finite")
        numbers.append(v)
    x0, y0, x1, y1 = numbers
    if min(numbers) < 0:
        raise BoxError(f"box {str(value)[:60]!r} starts outside the image: values must be ≥ 0")
    if not (x0 < x1 and y0 < y1):
        raise BoxError(
            f"box {str(value)[:60]!r} is empty or inverted: it needs x0 < x1 and y0 < y1 "
            "(left, top, right, bottom)"
        )
    return Box(x0, y0, x1, y1)


def crop(image: Image.Image, box: Any) -> Image.Image:
    """The part of a decoded image inside ``box`` (anything :func:`parse_box` takes)."""
    return image.crop(parse_box(box).pixels(*image.size))


def crop_source(src: ImageSource, box: Any, decode: str = "default") -> Image.Image:
    """Decode ``src`` (path, bytes or PIL image, by the ``decode`` mode) and crop it."""
    return crop(decode_image(src, decode), box)
