"""From near-duplicate pairs to groups and to what a cleaned list keeps (pure numpy).

Items have a role (0: product or catalog item, 1: distractor) and an order (their position in
the input). The cleaned list is decided greedily in *priority order*, products before
distractors, then input order: an item is dropped when it is a near-duplicate of an item
already kept. So every dropped item names a kept item it duplicates (no chain A~B~C drops C for
resembling a B that was itself dropped), a distractor that duplicates a product always goes
(paper §3.1: it would be a second right answer the benchmark counts as wrong), and a product
is dropped only for another product.

``scope`` says which pairs count: ``"all"``; ``"cross"`` (product-distractor only, the
paper's cleaning); ``"within"`` (same role only). Groups are the connected components of the
counted pairs, for the report.
"""

from __future__ import annotations

import numpy as np

SCOPES = ("all", "cross", "within")
PRODUCT, DISTRACTOR = 0, 1


def scope_mask(roles: np.ndarray, i: np.ndarray, j: np.ndarray, scope: str) -> np.ndarray:
    """Which pairs ``(i, j)`` count under ``scope`` (see the module docstring)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    same = roles[i] == roles[j]
    if scope == "cross":
        return ~same
    if scope == "within":
        return same
    return np.ones(len(i), dtype=bool)


def decide(roles: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep or drop each item, greedily in priority order (module docstring).

    roles: (n,) int8; i, j: (p,) int64 pair ends. Returns ``(kept, duplicate_of)``: (n,) bool,
    and (n,) int64 with, for each dropped item, the kept item it duplicates (-1 if kept).
    """
    n = len(roles)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), roles))] = np.arange(n)
    first = np.where(rank[i] < rank[j], i, j)  # (p,) the end decided first
    later = np.where(rank[i] < rank[j], j, i)
    order = np.lexsort((rank[first], rank[later]))  # a dropped item names its first partner
    kept = np.ones(n, dtype=bool)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    for a, b in zip(first[order].tolist(), later[order].tolist()):
        if kept[b] and kept[a]:  # a is final (decided before b); b duplicates a kept item
            kept[b] = False
            duplicate_of[b] = a
    return kept, duplicate_of


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label of each item (the smallest index in its component); items
    in no pair are their own component. Label propagation with pointer jumping."""
    label = np.arange(n, dtype=np.int64)
    if len(i) == 0:
        return label
    while True:
        low = np.minimum(label[i], label[j])
        before = label.copy()
        np.minimum.at(label, i, low)
        np.minimum.at(label, j, low)
        label = label[label]  # jump: follow each label to its own label
        while not np.array_equal(label, label[label]):
            label = label[label]
        if np.array_equal(label, before):
            return label


def group_members(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each component with two or more members, ordered by smallest member."""
    order = np.argsort(labels, kind="stable")
    _, start, count = np.unique(labels[order], return_index=True, return_counts=True)
    return [order[s : s + c] for s, c in zip(start, count) if c > 1]
