"""Modification texts for :class:`~referred.data.synth.edits.Edit` s, in varied wording.

Shoppers say the same change many ways ("in red", "make it red", "red instead of blue", "same
but red") and in either direction ("same but striped" / "less busy"), so every edit has
several templates; :func:`describe` draws one per edit from a generator and joins two edits
the way people do ("in red and with stripes"). FashionIQ gives two texts per triplet from two
annotators; :func:`two_captions` draws two different ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from referred.data.synth.edits import Edit

PATTERN_ADJ: dict[str, str] = {
    "plain": "plain",
    "stripes": "striped",
    "pinstripes": "pinstriped",
    "dots": "polka dot",
    "checks": "checkered",
    "plaid": "plaid",
    "two-tone": "two-tone",
    "zigzag": "zigzag",
    "floral": "floral",
    "camo": "camouflage",
}
PATTERN_NOUN: dict[str, str] = {
    "plain": "plain fabric",
    "stripes": "stripes",
    "pinstripes": "pinstripes",
    "dots": "polka dots",
    "checks": "checks",
    "plaid": "a plaid pattern",
    "two-tone": "two tones",
    "zigzag": "zigzags",
    "floral": "flowers",
    "camo": "a camo print",
}
TEXTURE_WORDS: dict[str, tuple[str, ...]] = {
    "smooth": ("smooth", "flat"),
    "knit": ("knitted", "knit"),
    "twill": ("denim", "twill"),
    "corduroy": ("corduroy", "ribbed corduroy"),
    "tweed": ("woollen", "tweed"),
    "quilted": ("quilted", "padded"),
}
MOTIF_WORDS: dict[str, str] = {
    "star": "star",
    "heart": "heart",
    "circle": "circle",
    "diamond": "diamond",
    "triangle": "triangle",
    "cross": "cross",
    "bars": "bar",
    "flower": "flower",
}
#: Length and sleeve swaps worded as what changes; other swaps use the nouns only.
_SHAPE_WORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("dress", "gown"): ("longer", "make it longer", "floor-length", "a long gown instead"),
    ("gown", "dress"): ("shorter", "make it shorter", "knee-length", "a short dress instead"),
    ("t-shirt", "sweater"): ("with long sleeves", "long-sleeved", "a sweater instead"),
    ("sweater", "t-shirt"): ("with short sleeves", "short-sleeved", "a t-shirt instead"),
    ("t-shirt", "tank top"): ("sleeveless", "without sleeves", "a tank top instead"),
    ("tank top", "t-shirt"): ("with short sleeves", "with sleeves", "a tee instead"),
    ("sweater", "tank top"): ("sleeveless", "no sleeves", "a tank top instead"),
    ("tank top", "sweater"): ("with long sleeves", "long-sleeved", "a sweater instead"),
    ("jacket", "coat"): ("longer", "make it longer", "a long coat instead", "knee-length"),
    ("coat", "jacket"): ("shorter", "make it shorter", "a short jacket instead", "cropped"),
    ("jacket", "cape"): ("without sleeves", "a cape instead", "make it a cape"),
    ("coat", "cape"): ("without sleeves", "a cape instead", "make it a cape"),
    ("cape", "jacket"): ("with sleeves", "a short jacket instead", "make it a jacket"),
    ("cape", "coat"): ("with sleeves", "a long coat instead", "make it a coat"),
    ("dress", "jumpsuit"): ("with legs", "a jumpsuit instead", "make it a jumpsuit"),
    ("gown", "jumpsuit"): ("with legs", "a jumpsuit instead", "make it a jumpsuit"),
    ("jumpsuit", "dress"): ("a dress instead", "with a short skirt, not legs", "make it a dress"),
    ("jumpsuit", "gown"): ("a long gown instead", "with a long skirt, not legs", "a gown"),
    ("shorts", "trousers"): ("longer", "full length", "trousers instead"),
    ("trousers", "shorts"): ("shorter", "cut short", "shorts instead"),
    ("skirt", "long skirt"): ("longer", "make it longer", "a maxi skirt instead"),
    ("long skirt", "skirt"): ("shorter", "make it shorter", "a mini skirt instead"),
    ("gloves", "long gloves"): ("longer", "elbow-length", "long gloves instead"),
    ("long gloves", "gloves"): ("shorter", "wrist-length", "short gloves instead"),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _colour(e: Edit) -> tuple[str, ...]:
    a, b = e.after, e.before
    return (
        f"in {a}",
        f"make it {a}",
        f"same but {a}",
        f"{a} instead of {b}",
        f"change the colour to {a}",
        f"{_article(a)} {a} one",
        f"{a}, not {b}",
        f"is {a}",
        f"the {a} version",
        f"swap the {b} for {a}",
    )


def _pattern(e: Edit) -> tuple[str, ...]:
    adj, noun = PATTERN_ADJ[e.after], PATTERN_NOUN[e.after]
    adj_b, noun_b = PATTERN_ADJ[e.before], PATTERN_NOUN[e.before]
    if e.after == "plain":
        return (
            "plain",
            "less busy",
            f"without the {noun_b}",
            f"remove the {noun_b}",
            "make it plain",
            "in a solid colour",
            "no pattern",
            f"plain instead of {adj_b}",
            "simpler, no pattern",
        )
    common = (f"make it {adj}", f"{adj}", f"with {noun}", f"same but {adj}")
    if e.before == "plain":
        return (*common, f"add {noun}", f"{adj} instead of plain", f"busier, with {noun}")
    return (*common, f"{adj} instead of {adj_b}", f"{noun} instead of {noun_b}")


def _variant(e: Edit) -> tuple[str, ...]:
    a, b = e.after, e.before
    generic = (f"{_article(a)} {a} instead", f"make it {_article(a)} {a}", f"{a} instead of {b}")
    return _SHAPE_WORDS.get((b, a), ()) + generic


def _buttons(e: Edit) -> tuple[str, ...]:
    if e.after == "0":
        return ("without buttons", "no buttons", "remove the buttons", "without the buttons")
    return ("with buttons", "add buttons", "buttoned", "with a row of buttons")


def _motif(e: Edit) -> tuple[str, ...]:
    if e.after == "none":
        m = MOTIF_WORDS[e.before]
        return (f"without the {m}", "remove the print", "no print", f"without the {m} print")
    m = MOTIF_WORDS[e.after]
    added = (f"with {_article(m)} {m} print", f"add {_article(m)} {m}", f"with a small {m} on it")
    if e.before == "none":
        return added
    return (*added, f"{_article(m)} {m} instead of the {MOTIF_WORDS[e.before]}")


def _texture(e: Edit) -> tuple[str, ...]:
    if e.after == "smooth":
        b = TEXTURE_WORDS[e.before][0]
        return ("smooth fabric", f"not {b}", "in a smooth fabric", f"without the {b} texture")
    words = TEXTURE_WORDS[e.after]
    return (*words, f"in {words[0]}", f"make it {words[0]}", f"{words[0]} fabric")


def _trim(e: Edit) -> tuple[str, ...]:
    if e.after == "none":
        what = "piping" if e.before == "piping" else "hem band"
        return (f"without the {what}", "no trim", "plain edges", f"remove the {what}")
    if e.after == "piping":
        return ("with piping", "with contrast piping", "add piping", "with piped edges")
    return ("with a contrasting hem", "with a hem band", "add a coloured hem")


_TEMPLATES = {
    "colour": _colour,
    "pattern": _pattern,
    "variant": _variant,
    "buttons": _buttons,
    "motif": _motif,
    "texture": _texture,
    "trim": _trim,
}
_JOINS = ("{} and {}", "{}, {}", "{}, and {}", "{}; also {}")


def phrases(edit: Edit) -> tuple[str, ...]:
    """Every wording of one edit."""
    if edit.attribute not in _TEMPLATES:
        raise ValueError(
            f"unknown attribute {edit.attribute!r}; expected one of {list(_TEMPLATES)}"
        )
    return _TEMPLATES[edit.attribute](edit)


def describe(edits: Sequence[Edit], rng: np.random.Generator) -> str:
    """One modification text for ``edits`` (one or two), each worded at random."""
    if not 1 <= len(edits) <= 2:
        raise ValueError(f"describe takes one or two edits, got {len(edits)}")
    parts = [_pick(rng, phrases(e)) for e in edits]
    if len(parts) == 1:
        return parts[0]
    return _pick(rng, _JOINS).format(*parts)


def two_captions(edits: Sequence[Edit], rng: np.random.Generator) -> tuple[str, str]:
    """Two modification texts, different wordings where the edits allow it (FashionIQ's two
    annotators)."""
    first = describe(edits, rng)
    for _ in range(8):
        second = describe(edits, rng)
        if second != first:
            break
    return first, second
