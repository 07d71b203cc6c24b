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


def category_key(name: str) -> str:
    """How names are compared: case, surrounding space and ``_``/``-`` versus space are
    ignored (``lower_body``, ``Lower-Body`` and ``lower body`` all name ``Lower Body``)."""
    return " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()


def category_index(name: str, categories: tuple[str, ...] = LRVSF_CATEGORIES) -> int:
    """Index of ``name`` in ``categories`` (exact match first, then by :func:`category_key`)."""
    if name in categories:
        return categories.index(name)
    keyed = {category_key(c): i for i, c in enumerate(categories)}
    key = category_key(name)
    if key in keyed:
        return keyed[key]
    raise ValueError(f"unknown category {name!r}; expected one of: {', '.join(categories)}")
