"""What a synthetic product *is*: category, shape, colours, fabric, trims and print.

An :class:`ItemSpec` fully determines how a product looks, alone or worn. Its identity lives
in details the captions do not name (the exact hue inside a colour family, the pattern's
scale, phase and angle, the secondary, accent and trim colours, the texture, a small print,
buttons, the silhouette's width and taper), so many products share a caption ("a red tote
bag") as they share generic BLIP-2 captions in LRVS-F, and only the image tells them apart.
"""

from __future__ import annotations

import bisect
import colorsys
import functools
import itertools
from dataclasses import dataclass, replace

import numpy as np

from referred.categories import LRVSF_CATEGORIES
from referred.data.synth.captions import write_captions

RGB = tuple[int, int, int]

#: Colour families: name → (weight, hue range in degrees, saturation range, value range).
#: The name goes into captions; the exact hue, saturation and value are the product's own.
FAMILIES: dict[str, tuple[float, tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "black": (0.13, (0, 360), (0.0, 0.3), (0.07, 0.2)),
    "white": (0.08, (0, 360), (0.0, 0.08), (0.9, 0.98)),
    "grey": (0.07, (0, 360), (0.0, 0.1), (0.38, 0.72)),
    "beige": (0.07, (26, 46), (0.16, 0.36), (0.74, 0.92)),
    "brown": (0.07, (14, 36), (0.45, 0.8), (0.28, 0.55)),
    "red": (0.08, (-10, 8), (0.65, 0.95), (0.55, 0.9)),
    "pink": (0.07, (318, 350), (0.28, 0.6), (0.8, 0.98)),
    "orange": (0.04, (16, 32), (0.7, 0.95), (0.85, 1.0)),
    "yellow": (0.05, (44, 58), (0.6, 0.95), (0.85, 1.0)),
    "green": (0.08, (80, 160), (0.4, 0.8), (0.32, 0.7)),
    "blue": (0.09, (195, 225), (0.5, 0.85), (0.6, 0.92)),
    "navy": (0.07, (218, 236), (0.55, 0.9), (0.18, 0.36)),
    "purple": (0.05, (262, 295), (0.35, 0.7), (0.32, 0.7)),
}

#: Pattern → sampling weight (plain is the most common, as in real catalogues).
PATTERNS: dict[str, float] = {
    "plain": 4.0,
    "stripes": 1.0,
    "pinstripes": 0.6,
    "dots": 0.8,
    "checks": 0.8,
    "plaid": 0.7,
    "two-tone": 0.7,
    "zigzag": 0.5,
    "floral": 0.7,
    "camo": 0.5,
}
#: Textures modulate the fabric's brightness: knit ribs, twill, corduroy, tweed, quilting.
TEXTURES: dict[str, float] = {
    "smooth": 3.0,
    "knit": 1.0,
    "twill": 1.0,
    "corduroy": 0.7,
    "tweed": 0.8,
    "quilted": 0.6,
}
#: Small prints placed somewhere on the item ("none" most often).
MOTIFS: dict[str, float] = {
    "none": 3.0,
    "star": 0.5,
    "heart": 0.5,
    "circle": 0.5,
    "diamond": 0.5,
    "triangle": 0.5,
    "cross": 0.4,
    "bars": 0.5,
    "flower": 0.4,
}
TRIMS: dict[str, float] = {"none": 2.0, "piping": 1.0, "hem": 1.0}
#: Buckles, buttons, chains: gold, silver, black, gunmetal, brass.
HARDWARE: tuple[RGB, ...] = (
    (205, 170, 70),
    (192, 194, 198),
    (30, 30, 32),
    (95, 98, 104),
    (170, 130, 60),
)

#: Shape variants per category; the variant sets the silhouette and the captions' noun.
VARIANTS: dict[str, tuple[str, ...]] = {
    "Bags": ("tote bag", "clutch", "backpack", "shoulder bag"),
    "Feet": ("sneakers", "boots", "heels"),
    "Hands": ("mittens", "gloves", "long gloves"),
    "Head": ("beanie", "cap", "wide-brim hat", "top hat"),
    "Lower Body": ("trousers", "shorts", "skirt", "long skirt"),
    "Neck": ("scarf", "necklace", "bow tie"),
    "Outwear": ("coat", "jacket", "cape"),
    "Upper Body": ("t-shirt", "sweater", "tank top"),
    "Waist": ("belt", "sash"),
    "Whole Body": ("dress", "jumpsuit", "gown"),
}
assert set(VARIANTS) == set(LRVSF_CATEGORIES)
#: Categories that can carry buttons.
BUTTONED = frozenset({"Upper Body", "Outwear", "Whole Body"})


@dataclass(frozen=True)
class ItemSpec:
    """Everything needed to draw one product, alone or worn, and its two captions.

    ``period`` is the pattern period as a fraction of the item's box height, ``phase`` its
    offset in periods, ``angle`` the stripe direction in degrees. ``motif_xy`` and
    ``motif_size`` place the print in box units; ``width`` and ``taper`` reshape the
    silhouette; ``seed`` fixes the item's own noise (camouflage blobs, tweed).
    """

    category: str
    variant: str
    colour: RGB
    colour_name: str
    colour2: RGB
    colour2_name: str
    pattern: str
    period: float
    phase: float
    angle: int
    accent: RGB = (0, 0, 0)
    trim: str = "none"
    trim_colour: RGB = (0, 0, 0)
    trim_width: float = 0.04
    motif: str = "none"
    motif_colour: RGB = (255, 255, 255)
    motif_xy: tuple[float, float] = (0.5, 0.5)
    motif_size: float = 0.2
    texture: str = "smooth"
    texture_scale: float = 0.03
    texture_strength: float = 0.1
    buttons: int = 0
    hardware: RGB = (192, 194, 198)
    width: float = 1.0
    taper: float = 0.0
    seed: int = 0
    captions: tuple[str, str] = ("", "")

    def caption(self) -> str:
        """The first caption (BLIP-2 style), e.g. ``"a red tote bag with handles"``."""
        return self.captions[0]

    def caption2(self) -> str:
        """The second caption, worded differently, e.g. ``"a handbag in red"``."""
        return self.captions[1]

    def title(self) -> str:
        """A shop-like product title for the ``TEXT`` column."""
        words = (self.colour_name, "" if self.pattern == "plain" else self.pattern, self.variant)
        return " ".join(w for w in words if w).capitalize() + " - Synthetic Fashion"


@functools.cache
def _cumulative(items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, ...], list[float]]:
    names = tuple(name for name, _ in items)
    total = sum(w for _, w in items)
    return names, list(itertools.accumulate(w / total for _, w in items))


class _Draws:
    """Uniform numbers drawn from a generator in one call and handed out one by one (one
    numpy call per item instead of thirty)."""

    def __init__(self, rng: np.random.Generator, n: int = 48) -> None:
        self._u = rng.random(n).tolist()
        self._i = 0

    def unit(self) -> float:
        self._i += 1
        return self._u[self._i - 1]

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def index(self, n: int) -> int:
        return min(n - 1, int(self.unit() * n))

    def pick(self, table: tuple[tuple[str, ...], list[float]]) -> str:
        """A name of ``table`` (from :func:`_cumulative`), drawn by weight."""
        names, cum = table
        return names[min(len(names) - 1, bisect.bisect_right(cum, self.unit()))]


def _table(weights: dict[str, float]) -> tuple[tuple[str, ...], list[float]]:
    return _cumulative(tuple(weights.items()))


_FAMILY_WEIGHTS = _table({k: v[0] for k, v in FAMILIES.items()})
_WEIGHTS_WITHOUT = {x: _table({k: v[0] for k, v in FAMILIES.items() if k != x}) for x in FAMILIES}
_PATTERNS, _TRIMS, _MOTIFS, _TEXTURES = (_table(w) for w in (PATTERNS, TRIMS, MOTIFS, TEXTURES))


def _colour(d: _Draws, exclude: str | None = None) -> tuple[RGB, str]:
    name = d.pick(_FAMILY_WEIGHTS if exclude is None else _WEIGHTS_WITHOUT[exclude])
    _, hue, sat, val = FAMILIES[name]
    h = (d.uniform(*hue) % 360) / 360
    r, g, b = colorsys.hsv_to_rgb(h, d.uniform(*sat), d.uniform(*val))
    return (round(r * 255), round(g * 255), round(b * 255)), name


def sample_colour(rng: np.random.Generator, exclude: str | None = None) -> tuple[RGB, str]:
    """A colour of a random family (weighted; never ``exclude``): (exact RGB, family name)."""
    return _colour(_Draws(rng, 4), exclude)


def sample_item(category: str, rng: np.random.Generator) -> ItemSpec:
    """A random instance of ``category`` (one of :data:`LRVSF_CATEGORIES`), captions included."""
    d = _Draws(rng)
    variants = VARIANTS[category]
    variant = variants[d.index(len(variants))]
    colour, name = _colour(d)
    colour2, name2 = _colour(d, exclude=name)
    pattern = d.pick(_PATTERNS)
    accent, _ = _colour(d)
    trim_colour, _ = _colour(d)
    motif_colour, _ = _colour(d, exclude=name)
    period = d.uniform(0.05, 0.12) if pattern == "pinstripes" else d.uniform(0.1, 0.32)
    buttons = d.index(6) if category in BUTTONED and d.unit() < 0.5 else 0
    spec = ItemSpec(
        category=category,
        variant=variant,
        colour=colour,
        colour_name=name,
        colour2=colour2,
        colour2_name=name2,
        pattern=pattern,
        period=period,
        phase=d.unit(),
        angle=d.index(180),
        accent=colour2 if d.unit() < 0.5 else accent,
        trim=d.pick(_TRIMS),
        trim_colour=trim_colour,
        trim_width=d.uniform(0.03, 0.09),
        motif=d.pick(_MOTIFS),
        motif_colour=motif_colour,
        motif_xy=(d.uniform(0.3, 0.7), d.uniform(0.25, 0.7)),
        motif_size=d.uniform(0.12, 0.3),
        texture=d.pick(_TEXTURES),
        texture_scale=d.uniform(0.015, 0.05),
        texture_strength=d.uniform(0.06, 0.16),
        buttons=buttons,
        hardware=HARDWARE[d.index(len(HARDWARE))],
        width=d.uniform(0.88, 1.12),
        taper=d.uniform(-0.12, 0.12),
        seed=d.index(2**31),
    )
    return replace(spec, captions=write_captions(spec, rng))
