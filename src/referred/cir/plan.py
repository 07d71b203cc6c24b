"""One split of a FashionIQ-layout set as rows: the images to embed, each category's gallery,
and every triplet's candidate and target row. Pure bookkeeping, no vectors.

A target missing from its category's ``image_splits`` list is added to that gallery (and
counted), so it can be found at all; the official files never need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from referred.data.fashioniq import FashionIQ, Triplet


@dataclass
class SplitPlan:
    """``names``: every image of the split once; ``galleries[c]``: rows of ``names`` in
    category ``c``'s gallery; ``triplets[c]`` with ``candidates[c]`` / ``targets[c]``: their
    rows *within that gallery* (-1: a candidate outside it, then nothing is left out)."""

    split: str
    names: list[str] = field(default_factory=list)
    galleries: dict[str, np.ndarray] = field(default_factory=dict)
    triplets: dict[str, list[Triplet]] = field(default_factory=dict)
    candidates: dict[str, np.ndarray] = field(default_factory=dict)
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``query_rows[c]``: each triplet's candidate as a row of ``names`` (its vector)
    query_rows: dict[str, np.ndarray] = field(default_factory=dict)
    added_targets: int = 0

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.galleries)

    def all_triplets(self) -> list[Triplet]:
        return [t for c in self.categories for t in self.triplets[c]]


def plan_split(
    data: FashionIQ, split: str, categories: tuple[str, ...] | None = None, limit: int | None = None
) -> SplitPlan:
    """The :class:`SplitPlan` of ``split`` (``categories``: default all of the split;
    ``limit``: at most that many triplets per category, the first ones)."""
    cats = data.categories_of(split) if categories is None else categories
    plan = SplitPlan(split)
    row_of: dict[str, int] = {}

    def row(name: str) -> int:
        if name not in row_of:
            row_of[name] = len(plan.names)
            plan.names.append(name)
        return row_of[name]

    for c in cats:
        triplets = data.triplets(split, [c])[:limit]
        gallery = data.gallery(split, c)
        local = {n: i for i, n in enumerate(gallery)}
        for t in triplets:
            if t.target not in local:
                local[t.target] = len(gallery)
                gallery.append(t.target)
                plan.added_targets += 1
        plan.galleries[c] = np.array([row(n) for n in gallery], np.int64)
        plan.triplets[c] = triplets
        plan.candidates[c] = np.array([local.get(t.candidate, -1) for t in triplets], np.int64)
        plan.targets[c] = np.array([local[t.target] for t in triplets], np.int64)
        # candidates outside the gallery still need a vector
        plan.query_rows[c] = np.array([row(t.candidate) for t in triplets], np.int64)
    return plan
