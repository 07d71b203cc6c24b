"""``--spec auto``: the index type for a catalog's size and a memory budget.

Measured on this project's machines (docs/benchmarks.md, "Tuning to a target recall"): exact
search answers one query in a few milliseconds up to ~50,000 512-d products, so below that the
exact ``flat`` index is chosen; above it, the first of these approximate specs whose memory as
served fits the budget, each then tuned to the target recall by
:func:`referred.catalog.tune.tune_to_recall`:

1. ``faiss:HNSW32``: the fastest at a given recall, ~2.4 KB a 512-d vector (the float
   vectors live in the graph's storage);
2. ``faiss:IVF{nlist},SQ8``: one byte a dimension, ~570 B a 512-d vector resident;
3. ``faiss:IVF{nlist},SQ6``: six bits a dimension, ~440 B.

``nlist`` is ~4·√N, a power of two. The memory counted is what a served index keeps resident
(:func:`referred.index.estimate.estimate_faiss` with ``store_vectors=False``): lossy indexes
keep the float vectors beside their codes for ``get`` and exact filtered searches, and a loaded
index memory-maps them, so they stay on disk until touched. Pure functions: no faiss needed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from referred.index.errors import SpecError
from referred.index.estimate import estimate_faiss, estimate_flat

#: Up to this many products exact search is chosen (a few ms a query at 512-d on one core).
EXACT_UP_TO = 50_000
#: Candidates after flat, best first; ``{nlist}`` is filled per catalog size.
CANDIDATES = ("HNSW32", "IVF{nlist},SQ8", "IVF{nlist},SQ6")
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 1e12, "tb": 1e12}  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The spec chosen, its resident bytes as served, and why (for people to read)."""

    spec: str
    resident_bytes: int
    reason: str

    @property
    def approximate(self) -> bool:
        return self.spec != "flat"


def parse_size(text: str | int | float) -> int:
    """Bytes from ``"1.5GB"``, ``"800MiB"``, ``"2e9"`` or a number; ValueError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(
                f"a memory size is a number with an optional unit (B, KB, MB, GB, KiB, MiB, "
                f"GiB), e.g. 1.5GB; got {text!r}"
            )
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return int(value)


def nlist_for(n: int) -> int:
    """~4·√n inverted lists, a power of two (at least 16)."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def choose_spec(n: int, dim: int, memory_budget: int | None = None) -> Choice:
    """The spec for ``n`` vectors of ``dim`` within ``memory_budget`` bytes resident (None:
    no limit); SpecError when nothing fits, naming the smallest need."""
    if n < 0 or dim < 1:
        raise ValueError(f"need n >= 0 and dim >= 1, got n={n}, dim={dim}")
    budget = "no memory budget" if memory_budget is None else f"budget {_human(memory_budget)}"
    flat = estimate_flat(n, dim)
    if n <= EXACT_UP_TO and (memory_budget is None or flat <= memory_budget):
        return Choice(
            "flat", flat, f"{n} products ≤ {EXACT_UP_TO}: exact search is fast enough ({budget})"
        )
    nlist = nlist_for(n)
    tried = []
    for factory in (c.format(nlist=nlist) for c in CANDIDATES):
        need = estimate_faiss(factory, n, dim, store_vectors=False)
        tried.append((factory, need))
        if memory_budget is None or need <= memory_budget:
            return Choice(
                f"faiss:{factory}",
                need,
                f"{n} products: approximate, the first candidate that fits ({budget}; "
                f"{_human(need)} resident, {need / max(n, 1):.0f} bytes a vector)",
            )
    needs = ", ".join(f"faiss:{f} {_human(b)}" for f, b in tried)
    raise SpecError(
        f"no index spec fits {_human(memory_budget or 0)} for {n} vectors of dim {dim} "
        f"(resident: {needs}); raise --memory-budget or reduce the dimension"
    )


def _human(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
