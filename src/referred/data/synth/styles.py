"""Named rendering styles, the per-image *look* drawn from one, and the camera's finish.

A :class:`Style` says how garments are drawn (outlines, shading, hatching, wobbly lines) and
how the picture is finished (blur, grain, a paper wash of the background). A :class:`Look`
is one image's draw of it: the light's direction and strength, the line width, a colour
cast, an image-wide light falloff, a vignette, and the JPEG quality. One style
(:data:`HELDOUT_STYLE` by default) can be kept out of training and used for a held-out test.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageFilter


@dataclass(frozen=True)
class Style:
    """How garments are drawn and the picture finished.

    ``line`` is the outline width as a fraction of the image side (0: none) and
    ``line_tone`` the outline's brightness relative to the fill (0: black); ``shading`` is
    ``"none"``, ``"smooth"`` (a ramp) or ``"cel"`` (two hard tones); ``grain`` is the noise
    amplitude in grey levels; ``wash`` how far the background fades to paper white.
    """

    name: str
    line: float = 0.0
    line_tone: float = 0.35
    shading: str = "none"
    hatching: bool = False
    wobble: bool = False
    blur: bool = False
    grain: int = 0
    wash: float = 0.0


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("flat"),
        Style("outline", line=0.008, line_tone=0.35),
        Style("shaded", shading="smooth", grain=3),
        Style("photo", shading="smooth", blur=True, grain=7),
        Style("comic", line=0.014, line_tone=0.0, shading="cel"),
        Style("sketch", line=0.005, line_tone=0.2, hatching=True, wobble=True, grain=4, wash=0.55),
    )
}
#: The style kept out of training unless a config says otherwise.
HELDOUT_STYLE = "sketch"


def training_styles(heldout: str | None) -> tuple[str, ...]:
    """Every style name but ``heldout`` (all of them when ``None``)."""
    if heldout is not None and heldout not in STYLES:
        raise ValueError(f"unknown style {heldout!r}; expected one of: {', '.join(STYLES)}")
    return tuple(name for name in STYLES if name != heldout)


@dataclass(frozen=True)
class Look:
    """One image's draw of a style (see the module docstring)."""

    style: Style
    light: tuple[float, float]
    shade: float
    line_width: int
    gains: tuple[float, float, float]
    falloff: float
    vignette: float
    quality: int


def sample_look(
    style: str, size: int, rng: np.random.Generator, quality: tuple[int, int], mild: bool = False
) -> Look:
    """A look of ``style`` for a ``size``-pixel image; ``mild``: product-photo lighting."""
    s = STYLES[style]
    angle = rng.uniform(0, 2 * np.pi)
    cast = 0.04 if mild else 0.1
    gain = rng.uniform(0.95, 1.04) if mild else rng.uniform(0.86, 1.12)
    gains = gain * rng.uniform(1 - cast, 1 + cast, size=3)
    line = s.line * size * rng.uniform(0.7, 1.4)
    return Look(
        style=s,
        light=(float(np.cos(angle)), float(np.sin(angle))),
        shade=float(rng.uniform(0.15, 0.4)),
        line_width=max(1, round(line)) if s.line else 0,
        gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        falloff=0.0 if mild or rng.random() < 0.5 else float(rng.uniform(0.08, 0.3)),
        vignette=0.0 if mild or rng.random() < 0.6 else float(rng.uniform(0.08, 0.3)),
        quality=int(rng.integers(quality[0], quality[1] + 1)),
    )


def shade_map(
    look: Look, x0: int, y0: int, width: int, height: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Shading factors (height, width) of a unit at (x0, y0), and its shadow side (bool).

    The light falls across the unit along ``look.light``; ``None`` where the style has none.
    """
    if look.style.shading == "none" and not look.style.hatching:
        return None, None
    dx, dy = look.light
    half = 0.5 * max(width, height, 1)
    u = (np.arange(width, dtype=np.float32) - width / 2) * np.float32(dx / half)  # (w,)
    v = (np.arange(height, dtype=np.float32) - height / 2) * np.float32(dy / half)  # (h,)
    t = v[:, None] + u[None, :]  # (h, w), about -1 (lit) … 1 (shadow)
    shadow = t > 0.1
    if look.style.shading == "smooth":
        return (1.0 - np.float32(look.shade) * np.clip(t + 1.0, 0.0, 2.0) / 2).astype(
            np.float32
        ), shadow
    if look.style.shading == "cel":
        return np.where(shadow, np.float32(1.0 - look.shade), np.float32(1.0)), shadow
    return None, shadow


@functools.cache
def hatch_tile(size: int) -> np.ndarray:
    """(2·size, 2·size) bool diagonal hatching lines, spacing about 1/60 of ``size``."""
    step = max(3, size // 60)
    i = np.arange(2 * size)
    return ((i[:, None] + i[None, :]) % step) == 0


@functools.cache
def _grain_tile(size: int, amplitude: int) -> Image.Image:
    rng = np.random.default_rng([size, amplitude])
    noise = rng.normal(amplitude, amplitude / 2, size=(2 * size, 2 * size, 3))
    return Image.fromarray(np.clip(noise, 0, 2 * amplitude).astype(np.uint8), "RGB")


def wash(background: Image.Image, look: Look) -> Image.Image:
    """The background faded towards paper white by the style's ``wash``."""
    if not look.style.wash:
        return background
    paper = Image.new("RGB", background.size, (246, 242, 230))
    return Image.blend(background, paper, look.style.wash)


def finish(img: Image.Image, look: Look, rng: np.random.Generator) -> Image.Image:
    """The camera's side: light falloff and vignette, colour cast, blur and grain."""
    w, h = img.size
    if look.falloff or look.vignette:
        dx, dy = look.light
        x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]  # (1, w)
        y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]  # (h, 1)
        light = 1.0 - look.falloff * (0.5 + 0.5 * (x * dx + y * dy))  # (h, w)
        light = light - look.vignette * 0.5 * (x * x + y * y)
        m = Image.fromarray((np.clip(light, 0, 1) * 255).astype(np.uint8), "L")
        img = ImageChops.multiply(img, Image.merge("RGB", (m, m, m)))
    ramp = np.arange(256, dtype=np.float32)
    lut = np.concatenate([np.clip(ramp * g, 0, 255) for g in look.gains]).astype(np.uint8)
    img = img.point(lut.tolist())
    if look.style.blur:
        img = img.filter(ImageFilter.BoxBlur(float(rng.uniform(0.4, 1.0))))
    if look.style.grain:
        tile = _grain_tile(max(w, h), look.style.grain)
        ox, oy = (int(v) for v in rng.integers(0, max(w, h), size=2))
        img = ImageChops.add(img, tile.crop((ox, oy, ox + w, oy + h)), 1.0, -look.style.grain)
    return img
