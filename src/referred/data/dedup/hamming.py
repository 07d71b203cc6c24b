"""All pairs of 64-bit hashes within a Hamming radius, without comparing all pairs.

Multi-index hashing: the 64 bits are cut into ``m`` bands of about ``64 / m`` bits. Two hashes at
distance ``<= r`` differ in at most ``r // m`` bits in at least one band (pigeonhole), so every
such pair is found by looking, in each band, for hashes whose band keys differ by a mask of at
most ``s = r // m`` bits. Per band the hashes are sorted by key once; each mask pairs bucket
``k`` with bucket ``k ^ mask`` (``k < k ^ mask``, or within the bucket for the zero mask), so a
pair is met at most once per band, and it is kept only in the first band where it is met:
no pair is reported twice and no set of pairs is held beyond a chunk. Candidates are checked on
the full 64 bits in chunks of at most ``chunk`` pairs, which bounds memory whatever ``n``.

``m`` is chosen to minimise the expected candidate count for uniform hashes; real hashes
cluster (plain product photos share low frequencies), which makes buckets larger and the search
slower, never wrong. The cost is reported by :class:`HammingStats`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from referred.data.dedup.phash import popcount

#: Band counts tried; bands differ in width by at most one bit.
BAND_CHOICES = tuple(range(2, 9))
#: Candidate pairs checked at once.
CHUNK = 1 << 22
#: Bands up to this width find partner buckets through a direct table (2**width int32).
TABLE_BITS = 24


@dataclass
class HammingStats:
    """What a search cost: bands, per-band radius, masks, candidates checked, pairs found."""

    bands: int = 0
    band_radius: int = 0
    masks: int = 0
    candidates: int = 0
    pairs: int = 0


def band_layout(bands: int) -> list[tuple[int, int]]:
    """(shift, width) of each band: 64 bits cut into ``bands`` nearly equal parts."""
    widths = [64 // bands + (1 if b < 64 % bands else 0) for b in range(bands)]
    shifts = [sum(widths[:b]) for b in range(bands)]
    return list(zip(shifts, widths))


def masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set, zero first (uint64)."""
    out = [0]
    for r in range(1, radius + 1):
        out += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
    return np.asarray(out, dtype=np.uint64)


def _n_masks(width: int, radius: int) -> int:
    return sum(comb(width, r) for r in range(radius + 1))


def choose_bands(n: int, radius: int) -> int:
    """The band count with the least expected work for ``n`` uniform hashes: candidate pairs
    checked plus partner-bucket lookups (measured to cost about the same each)."""

    def cost(m: int) -> float:
        s = radius // m
        total = 0.0
        for _, width in band_layout(m):
            probes = _n_masks(width, s)
            total += probes * (n * n / 2.0 ** (width + 1) + min(n, 2**width))
        return total

    return min(BAND_CHOICES, key=cost)


def hamming_pairs(
    hashes: np.ndarray,
    radius: int,
    *,
    bands: int | None = None,
    chunk: int = CHUNK,
    stats: HammingStats | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` with ``popcount(hashes[i] ^ hashes[j]) <= radius``.

    hashes: (n,) uint64. Returns ``(i, j, distance)``: int64, int64, uint8 arrays sorted by
    ``(i, j)``. ``bands``: 2 to 8 (default: :func:`choose_bands`).
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    if h.ndim != 1:
        raise ValueError(f"hashes must be a 1-d uint64 array, got shape {h.shape}")
    if not 0 <= radius <= 64:
        raise ValueError(f"Hamming radius must be in 0..64, got {radius}")
    m = bands if bands is not None else choose_bands(len(h), radius)
    if m not in BAND_CHOICES:
        raise ValueError(f"bands must be one of {BAND_CHOICES}, got {m}")
    stats = stats if stats is not None else HammingStats()
    layout, s = band_layout(m), radius // m
    stats.bands, stats.band_radius = m, s
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for band, (shift, width) in enumerate(layout):
        keys = _band(h, shift, width)
        order = np.argsort(keys, kind="stable")
        hs = h[order]
        uniq, start, count = np.unique(keys[order], return_index=True, return_counts=True)
        probe = masks(width, s)
        stats.masks += len(probe)
        for a, b in _candidates(uniq, start, count, probe, width, chunk):
            stats.candidates += len(a)
            x = hs[a] ^ hs[b]
            near = popcount(x) <= radius
            a, b, x = a[near], b[near], x[near]
            first = np.ones(len(x), dtype=bool)  # met in an earlier band: kept there already
            for e_shift, e_width in layout[:band]:
                first &= popcount(_band(x, e_shift, e_width)) > s
            i, j = order[a[first]], order[b[first]]
            found.append((np.minimum(i, j), np.maximum(i, j), popcount(x[first])))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.uint8)
    i, j, d = (np.concatenate(parts) for parts in zip(*found))
    idx = np.lexsort((j, i))
    stats.pairs = len(idx)
    return i[idx].astype(np.int64), j[idx].astype(np.int64), d[idx]


def _band(x: np.ndarray, shift: int, width: int) -> np.ndarray:
    return (x >> np.uint64(shift)) & np.uint64((1 << width) - 1)


def _partner_finder(uniq: np.ndarray, width: int):
    """A function: keys -> (position of that key in ``uniq``, whether it is there)."""
    if width <= TABLE_BITS:
        table = np.full(1 << width, -1, dtype=np.int32)
        table[uniq.astype(np.int64)] = np.arange(len(uniq), dtype=np.int32)

        def find(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pos = table[keys.astype(np.int64)]
            return pos, pos >= 0

        return find

    def search(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(uniq, keys), len(uniq) - 1)
        return pos, uniq[pos] == keys

    return search


def _candidates(
    uniq: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
    probe: np.ndarray,
    width: int,
    chunk: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Positions (in key order) of candidate pairs, in chunks: the zero mask pairs a bucket
    with itself (``a < b``), a mask ``f`` pairs bucket ``k`` with bucket ``k ^ f > k``."""
    find = _partner_finder(uniq, width)
    for f in probe:
        if f == 0:
            many = count > 1
            sa, ca = start[many], count[many]
            yield from _expand(sa, ca, sa, ca, within=True, chunk=chunk)
            continue
        partner = uniq ^ f
        pos, hit = find(partner)
        hit &= partner > uniq
        sa, ca, sb, cb = start[hit], count[hit], start[pos[hit]], count[pos[hit]]
        yield from _expand(sa, ca, sb, cb, within=False, chunk=chunk)


def _expand(
    sa: np.ndarray, ca: np.ndarray, sb: np.ndarray, cb: np.ndarray, *, within: bool, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (a, b) with a in [sa, sa + ca) and b in [sb, sb + cb) for each bucket pair, cut
    into chunks of about ``chunk`` pairs (one bucket pair larger than that is one chunk)."""
    sizes = ca.astype(np.int64) * cb
    ends = np.cumsum(sizes)
    first = 0
    while first < len(sizes):
        base = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, base + chunk, side="right")), first + 1)
        part = slice(first, last)
        owner = np.repeat(np.arange(last - first), sizes[part])
        t = np.arange(len(owner), dtype=np.int64) - (np.cumsum(sizes[part]) - sizes[part])[owner]
        a = sa[part][owner] + t // cb[part][owner]
        b = sb[part][owner] + t % cb[part][owner]
        if within:
            a, b = a[a < b], b[a < b]
        yield a, b
        first = last
