"""What a synthetic product *is*: category, shape variant, colours and pattern, and its captions.

An :class:`ItemSpec` fully determines how a product looks, alone or worn; its continuous
parameters (colour jitter, pattern period and phase) make every instance unique, so two
products never render identically even when their words ("a red striped scarf") coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from referred.categories import LRVSF_CATEGORIES

RGB = tuple[int, int, int]

#: Named colours the generator draws from (the name goes into the captions).
PALETTE: dict[str, RGB] = {
    "red": (200, 30, 35),
    "orange": (235, 120, 30),
    "yellow": (240, 205, 40),
    "green": (45, 150, 60),
    "teal": (30, 140, 140),
    "blue": (40, 90, 210),
    "navy": (25, 35, 95),
    "purple": (120, 50, 160),
    "pink": (235, 120, 170),
    "brown": (120, 70, 35),
    "beige": (215, 190, 150),
    "black": (25, 25, 25),
    "white": (245, 245, 240),
    "grey": (130, 130, 130),
    "olive": (110, 115, 40),
    "maroon": (110, 20, 40),
}

#: Pattern name → adjective used in captions ("" for plain).
PATTERNS: dict[str, str] = {
    "plain": "",
    "stripes": "striped",
    "dots": "polka-dot",
    "checks": "checked",
    "two-tone": "two-tone",
    "zigzag": "zigzag",
}

#: Shape variants per category; the variant is the noun of the captions.
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


@dataclass(frozen=True)
class ItemSpec:
    """Everything needed to draw one product, alone or worn.

    ``period`` is the pattern period as a fraction of the item's box height, ``phase`` its
    offset in periods, ``angle`` the stripe direction in degrees (0 = horizontal stripes).
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

    def caption(self) -> str:
        """Short caption, e.g. ``"a red striped scarf"`` or ``"a red and white two-tone cap"``."""
        if self.pattern == "two-tone":
            words = f"{self.colour_name} and {self.colour2_name} two-tone {self.variant}"
        else:
            adjective = PATTERNS[self.pattern]
            words = " ".join(w for w in (self.colour_name, adjective, self.variant) if w)
        plural = self.variant.endswith("s") and not self.variant.endswith("ss")
        return words if plural else f"{_article(words)} {words}"

    def caption2(self) -> str:
        """A second phrasing, e.g. ``"red scarf with white stripes"``."""
        base = f"{self.colour_name} {self.variant}"
        if self.pattern == "plain":
            return f"plain {base}"
        if self.pattern == "two-tone":
            return f"{base} with {self.colour2_name} panels"
        noun = {"stripes": "stripes", "dots": "dots", "checks": "checks", "zigzag": "zigzags"}
        return f"{base} with {self.colour2_name} {noun[self.pattern]}"

    def title(self) -> str:
        """A shop-like product title for the ``TEXT`` column."""
        return self.caption2().capitalize() + " - Synthetic Fashion"


def _article(words: str) -> str:
    return "an" if words[:1] in "aeiou" else "a"


def _jitter(rgb: RGB, rng: np.random.Generator, amount: int = 14) -> RGB:
    noise = rng.integers(-amount, amount + 1, size=3).tolist()
    r, g, b = (min(255, max(0, c + n)) for c, n in zip(rgb, noise))
    return (r, g, b)


def sample_item(category: str, rng: np.random.Generator) -> ItemSpec:
    """A random instance of ``category`` (one of :data:`LRVSF_CATEGORIES`)."""
    names = list(PALETTE)
    first = names[int(rng.integers(len(names)))]
    second = names[int(rng.integers(len(names) - 1))]
    if second == first:
        second = names[-1]
    patterns = list(PATTERNS)
    # plain items are common in real catalogues; weight them a little more
    weights = np.array([2.0] + [1.0] * (len(patterns) - 1))
    pattern = patterns[int(rng.choice(len(patterns), p=weights / weights.sum()))]
    variants = VARIANTS[category]
    return ItemSpec(
        category=category,
        variant=variants[int(rng.integers(len(variants)))],
        colour=_jitter(PALETTE[first], rng),
        colour_name=first,
        colour2=_jitter(PALETTE[second], rng),
        colour2_name=second,
        pattern=pattern,
        period=float(rng.uniform(0.12, 0.3)),
        phase=float(rng.uniform(0.0, 1.0)),
        angle=int(rng.choice([0, 45, 90, 135])),
    )
