"""The LRVS-Fashion category vocabulary.

The order is the published index order of the released category model's embedding table
(``Bags`` = 0 … ``Whole Body`` = 9); no index is reserved for "no category".
"""

from __future__ import annotations

LRVSF_CATEGORIES: tuple[str, ...] = (
    "Bags",
    "Feet",
    "Hands",
    "Head",
    "Lower Body",
    "Neck",
    "Outwear",
    "Upper Body",
    "Waist",
    "Whole Body",
)


def category_index(name: str, categories: tuple[str, ...] = LRVSF_CATEGORIES) -> int:
    """Index of ``name`` in ``categories`` (exact match first, then case-insensitive)."""
    if name in categories:
        return categories.index(name)
    folded = {c.casefold(): i for i, c in enumerate(categories)}
    key = name.strip().casefold()
    if key in folded:
        return folded[key]
    raise ValueError(f"unknown category {name!r}; expected one of: {', '.join(categories)}")
