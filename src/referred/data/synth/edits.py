"""Edits of a synthetic product for composed retrieval: "this, but in red".

An :class:`Edit` changes one named attribute of an :class:`ItemSpec` (its colour family, its
pattern, its length or sleeves, its buttons, its print, its fabric, its trim) and keeps every
other detail, so the target is the reference product as it would look changed. Each edit
remembers the value before and after, so it can be worded in either direction
(:mod:`referred.data.synth.edit_texts`): the reverse of "in red" is "in blue".

Pure functions of the spec and a generator.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from referred.data.synth.attributes import (
    BUTTONED,
    MOTIFS,
    PATTERNS,
    TEXTURES,
    ItemSpec,
    sample_colour,
)
from referred.data.synth.captions import write_captions

#: Attribute → how often it is the one edited (the colour and the pattern most often, as in
#: shoppers' requests).
ATTRIBUTE_WEIGHTS: dict[str, float] = {
    "colour": 0.32,
    "pattern": 0.24,
    "variant": 0.16,
    "buttons": 0.07,
    "motif": 0.09,
    "texture": 0.07,
    "trim": 0.05,
}
#: Variant swaps per category; each is a length, sleeve or shape change worded by
#: :mod:`referred.data.synth.edit_texts`.
VARIANT_SWAPS: dict[str, tuple[tuple[str, str], ...]] = {
    "Whole Body": (("dress", "gown"), ("dress", "jumpsuit"), ("gown", "jumpsuit")),
    "Upper Body": (("t-shirt", "sweater"), ("t-shirt", "tank top"), ("sweater", "tank top")),
    "Outwear": (("jacket", "coat"), ("jacket", "cape"), ("coat", "cape")),
    "Lower Body": (("shorts", "trousers"), ("skirt", "long skirt"), ("skirt", "shorts")),
    "Hands": (("gloves", "long gloves"), ("mittens", "gloves")),
    "Feet": (("sneakers", "boots"), ("boots", "heels"), ("sneakers", "heels")),
    "Bags": (("tote bag", "backpack"), ("clutch", "shoulder bag"), ("tote bag", "clutch")),
    "Head": (("beanie", "cap"), ("cap", "wide-brim hat"), ("wide-brim hat", "top hat")),
    "Neck": (("scarf", "bow tie"), ("scarf", "necklace")),
    "Waist": (("belt", "sash"),),
}
_CHANGEABLE_PATTERNS = tuple(PATTERNS)
_MOTIFS = tuple(m for m in MOTIFS if m != "none")
_TEXTURES = tuple(t for t in TEXTURES if t != "smooth")
_TRIMS = ("piping", "hem")


@dataclass(frozen=True)
class Edit:
    """One attribute changed: ``attribute`` is a key of :data:`ATTRIBUTE_WEIGHTS`; ``before``
    and ``after`` are its values as words ("blue" → "red", "plain" → "stripes", "0" → "4"
    buttons)."""

    attribute: str
    before: str
    after: str

    def reversed(self) -> Edit:
        """The edit that undoes this one."""
        return Edit(self.attribute, self.after, self.before)


def attributes_of(spec: ItemSpec) -> tuple[str, ...]:
    """The attributes an edit can change on ``spec`` (buttons only where the category has
    them, a variant only where a swap exists)."""
    names = [a for a in ATTRIBUTE_WEIGHTS if a not in ("buttons", "variant")]
    if spec.category in BUTTONED:
        names.append("buttons")
    if any(spec.variant in pair for pair in VARIANT_SWAPS.get(spec.category, ())):
        names.append("variant")
    return tuple(sorted(names, key=list(ATTRIBUTE_WEIGHTS).index))


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _colour(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    rgb, name = sample_colour(rng, exclude=spec.colour_name)
    changes: dict[str, object] = {"colour": rgb, "colour_name": name}
    if spec.colour2_name == name:  # the second colour must stay apart from the first
        changes["colour2"], changes["colour2_name"] = sample_colour(rng, exclude=name)
    return replace(spec, **changes), Edit("colour", spec.colour_name, name)


def _pattern(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    if spec.pattern != "plain" and rng.random() < 0.5:
        new = "plain"  # "less busy" is as common a request as "add stripes"
    else:
        new = _pick(rng, [p for p in _CHANGEABLE_PATTERNS if p not in (spec.pattern, "plain")])
    period = spec.period
    if new == "pinstripes":
        period = float(rng.uniform(0.05, 0.12))
    elif spec.pattern == "pinstripes":
        period = float(rng.uniform(0.1, 0.32))
    return replace(spec, pattern=new, period=period), Edit("pattern", spec.pattern, new)


def _variant(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    pairs = [p for p in VARIANT_SWAPS[spec.category] if spec.variant in p]
    a, b = pairs[int(rng.integers(len(pairs)))]
    new = b if spec.variant == a else a
    return replace(spec, variant=new), Edit("variant", spec.variant, new)


def _buttons(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    new = 0 if spec.buttons else int(rng.integers(2, 6))
    return replace(spec, buttons=new), Edit("buttons", str(spec.buttons), str(new))


def _motif(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    if spec.motif != "none" and rng.random() < 0.6:
        new = "none"
    else:
        new = _pick(rng, [m for m in _MOTIFS if m != spec.motif])
    changes: dict[str, object] = {"motif": new}
    if spec.motif == "none":  # a print big enough to be seen
        changes["motif_size"] = float(rng.uniform(0.2, 0.3))
    return replace(spec, **changes), Edit("motif", spec.motif, new)


def _texture(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    new = "smooth" if spec.texture != "smooth" else _pick(rng, _TEXTURES)
    strength = max(spec.texture_strength, 0.12) if new != "smooth" else spec.texture_strength
    edit = Edit("texture", spec.texture, new)
    return replace(spec, texture=new, texture_strength=strength), edit


def _trim(spec: ItemSpec, rng: np.random.Generator) -> tuple[ItemSpec, Edit]:
    new = "none" if spec.trim != "none" else _pick(rng, _TRIMS)
    changes: dict[str, object] = {"trim": new}
    if new != "none":  # a trim that stands out from the fabric
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in spec.colour))
        changes["trim_colour"] = tuple(
            round(c * 255) for c in colorsys.hsv_to_rgb((h + 0.5) % 1, max(s, 0.5), 1 - v / 2)
        )
        changes["trim_width"] = max(spec.trim_width, 0.06)
    return replace(spec, **changes), Edit("trim", spec.trim, new)


_EDITORS = {
    "colour": _colour,
    "pattern": _pattern,
    "variant": _variant,
    "buttons": _buttons,
    "motif": _motif,
    "texture": _texture,
    "trim": _trim,
}


def edit_item(
    spec: ItemSpec, rng: np.random.Generator, n_edits: int = 1
) -> tuple[ItemSpec, tuple[Edit, ...]]:
    """``spec`` with ``n_edits`` (1 or 2) distinct attributes changed, drawn by weight; the
    captions are rewritten for the new look. Returns (target spec, the edits in order)."""
    if n_edits not in (1, 2):
        raise ValueError(f"n_edits must be 1 or 2, got {n_edits}")
    names = list(attributes_of(spec))
    weights = np.array([ATTRIBUTE_WEIGHTS[a] for a in names])
    chosen = rng.choice(len(names), size=n_edits, replace=False, p=weights / weights.sum())
    edits = []
    target = spec
    for i in sorted(chosen.tolist()):  # a fixed order: colour before pattern, …
        target, edit = _EDITORS[names[i]](target, rng)
        edits.append(edit)
    return replace(target, captions=write_captions(target, rng)), tuple(edits)


assert set(_EDITORS) == set(ATTRIBUTE_WEIGHTS)
