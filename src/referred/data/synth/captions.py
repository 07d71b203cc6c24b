"""Generic captions, worded like BLIP-2's: colour family, a noun, now and then one coarse word.

Captions never name what makes a product unique (the exact hue, pattern scale and phase,
trims, prints, textures, secondary colours), so on average many products share each one,
as in LRVS-F ("a red handbag with a strap"). The wording varies: synonyms of the noun and
several templates, drawn from the product's own generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from referred.data.synth.attributes import ItemSpec

#: Variant → nouns a captioner might use (the first is the variant's own name).
NOUNS: dict[str, tuple[str, ...]] = {
    "tote bag": ("tote bag", "tote", "handbag", "bag"),
    "clutch": ("clutch", "clutch bag", "purse"),
    "backpack": ("backpack", "bag"),
    "shoulder bag": ("shoulder bag", "handbag", "purse", "bag"),
    "sneakers": ("sneakers", "shoes"),
    "boots": ("boots", "ankle boots"),
    "heels": ("heels", "high heels", "shoes"),
    "mittens": ("mittens",),
    "gloves": ("gloves",),
    "long gloves": ("long gloves", "gloves"),
    "beanie": ("beanie", "hat"),
    "cap": ("cap", "baseball cap", "hat"),
    "wide-brim hat": ("wide-brim hat", "sun hat", "hat"),
    "top hat": ("top hat", "hat"),
    "trousers": ("trousers", "pants"),
    "shorts": ("shorts",),
    "skirt": ("skirt", "mini skirt"),
    "long skirt": ("long skirt", "maxi skirt", "skirt"),
    "scarf": ("scarf",),
    "necklace": ("necklace",),
    "bow tie": ("bow tie",),
    "coat": ("coat", "long coat"),
    "jacket": ("jacket",),
    "cape": ("cape", "poncho"),
    "t-shirt": ("t-shirt", "shirt"),
    "sweater": ("sweater", "jumper"),
    "tank top": ("tank top", "top"),
    "belt": ("belt",),
    "sash": ("sash", "belt"),
    "dress": ("dress",),
    "jumpsuit": ("jumpsuit",),
    "gown": ("gown", "dress"),
}
#: Variant → a generic feature every product of the variant has ("" when none).
FEATURES: dict[str, str] = {
    "tote bag": "with handles",
    "clutch": "with a flap",
    "backpack": "with a front pocket",
    "shoulder bag": "with a strap",
    "sneakers": "with flat soles",
    "boots": "with thick soles",
    "heels": "with a high heel",
    "mittens": "with cuffs",
    "beanie": "with a pom pom",
    "cap": "with a visor",
    "wide-brim hat": "with a band",
    "top hat": "with a band",
    "trousers": "with a waistband",
    "shorts": "with a waistband",
    "skirt": "with a waistband",
    "necklace": "with a pendant",
    "coat": "with long sleeves",
    "jacket": "with lapels",
    "t-shirt": "with short sleeves",
    "sweater": "with long sleeves",
    "tank top": "with thin straps",
    "belt": "with a buckle",
    "dress": "with a belt",
    "jumpsuit": "with wide legs",
}
#: Pattern → coarse word ("" for plain); scale, phase and angle are never named.
PATTERN_WORDS: dict[str, str] = {
    "plain": "",
    "stripes": "striped",
    "pinstripes": "striped",
    "dots": "polka dot",
    "checks": "checkered",
    "plaid": "checkered",
    "two-tone": "two-tone",
    "zigzag": "patterned",
    "floral": "floral",
    "camo": "patterned",
}
#: Texture → material word a captioner might use.
MATERIALS: dict[str, str] = {
    "smooth": "",
    "knit": "knit",
    "twill": "denim",
    "corduroy": "corduroy",
    "tweed": "wool",
    "quilted": "quilted",
}
#: Variants that are not made of fabric (no material word).
HARD = frozenset({"necklace"})
PLURAL = frozenset(
    {"sneakers", "boots", "heels", "mittens", "gloves", "long gloves", "trousers", "shorts"}
)


def _article(words: str) -> str:
    return "an" if words[:1] in "aeiou" else "a"


def _phrase(words: str, plural: bool) -> str:
    """``words`` with an article ("a …", "an …"), or "a pair of …" for pairs."""
    return f"a pair of {words}" if plural else f"{_article(words)} {words}"


def _first(spec: ItemSpec, noun: str, plural: bool, rng: np.random.Generator) -> str:
    """BLIP-2-like: "a red tote bag", "a red tote bag with handles", "a striped bag"."""
    colour, pattern = spec.colour_name, PATTERN_WORDS[spec.pattern]
    feature = FEATURES.get(spec.variant, "")
    roll = rng.random()
    if pattern and roll < 0.3:
        return _phrase(f"{pattern} {noun}", plural)
    if feature and roll < 0.65:
        return f"{_phrase(f'{colour} {noun}', plural)} {feature}"
    return _phrase(f"{colour} {noun}", plural)


def _second(spec: ItemSpec, noun: str, plural: bool, rng: np.random.Generator) -> str:
    """Another wording: "a handbag in red", "a knit sweater", "red shoes on a white background"."""
    colour = spec.colour_name
    material = "" if spec.variant in HARD else MATERIALS[spec.texture]
    roll = rng.random()
    if material and roll < 0.35:
        return _phrase(f"{material} {noun}", plural)
    if roll < 0.7:
        return f"{_phrase(noun, plural)} in {colour}"
    return f"{_phrase(f'{colour} {noun}', plural)} on a white background"


def write_captions(spec: ItemSpec, rng: np.random.Generator) -> tuple[str, str]:
    """Two captions of ``spec``, each with its own noun and template drawn from ``rng``."""
    nouns = NOUNS[spec.variant]
    plural = spec.variant in PLURAL
    first = _first(spec, nouns[int(rng.integers(len(nouns)))], plural, rng)
    second = _second(spec, nouns[int(rng.integers(len(nouns)))], plural, rng)
    return first, second
