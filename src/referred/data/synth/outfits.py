"""Plan a synthetic dataset: which products exist, in which outfits, in which split.

Every product belongs to exactly one *outfit*: 3–5 products of distinct, compatible
categories (a ``Whole Body`` item excludes ``Upper Body`` and ``Lower Body``). Each outfit
is rendered in 1–2 scenes, and every scene is a complex image of *every* product visible in
it, so a query image alone never tells which product is wanted: only the condition does.
Splits are drawn per outfit, so no scene is shared across splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from referred.categories import LRVSF_CATEGORIES
from referred.data.synth.attributes import ItemSpec, sample_item
from referred.data.synth.styles import HELDOUT_STYLE, training_styles

#: Categories that cannot be worn together (symmetric).
EXCLUSIVE: dict[str, frozenset[str]] = {
    "Whole Body": frozenset({"Upper Body", "Lower Body"}),
    "Upper Body": frozenset({"Whole Body"}),
    "Lower Body": frozenset({"Whole Body"}),
}
OUTFIT_SIZES = (3, 4, 5)
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and seed of a synthetic dataset (see ``docs/data.md`` for the defaults' rationale).

    ``size`` is the side of product images (SIMPLE, distractors); ``scene_size`` that of
    scenes (default ``size`` × 8/7: 256 for 224). ``distractors`` is per evaluation split
    (valid and test each get that many). Each image draws its JPEG quality in
    [``jpeg_quality_min``, ``jpeg_quality``]. ``heldout_style`` is a style of
    :data:`~referred.data.synth.styles.STYLES` never used outside the held-out test set
    (``None``: every style everywhere, no held-out set). ``workers`` only changes speed,
    never the output.
    """

    products: int = 1000
    distractors: int = 1000
    size: int = 224
    seed: int = 0
    workers: int = 1
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    shard_size: int = 1000
    dist_shard_size: int = 10_000
    partial_probability: float = 0.35
    jpeg_quality: int = 95
    jpeg_quality_min: int = 70
    scene_size: int | None = None
    heldout_style: str | None = HELDOUT_STYLE

    def __post_init__(self) -> None:
        if self.products < 9:
            raise ValueError(f"products must be at least 9 (3 per split), got {self.products}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")
        for name in ("size", "scene_size"):
            value = getattr(self, name)
            if value is not None and not 16 <= value <= 1024:
                raise ValueError(f"{name} must be between 16 and 1024 pixels, got {value}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.shard_size < 1 or self.dist_shard_size < 1:
            raise ValueError("shard sizes must be >= 1")
        for name in ("valid_fraction", "test_fraction", "partial_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality <= 100:
            raise ValueError(
                "JPEG qualities must satisfy 1 <= jpeg_quality_min <= jpeg_quality <= 100, got "
                f"{self.jpeg_quality_min} and {self.jpeg_quality}"
            )
        training_styles(self.heldout_style)  # names the styles when unknown

    @property
    def scene_side(self) -> int:
        """Side of scene images in pixels."""
        return self.scene_size if self.scene_size is not None else round(self.size * 8 / 7)

    @property
    def quality_range(self) -> tuple[int, int]:
        """Lowest and highest JPEG quality."""
        return (self.jpeg_quality_min, self.jpeg_quality)

    @property
    def styles(self) -> tuple[str, ...]:
        """Styles used everywhere but the held-out test set."""
        return training_styles(self.heldout_style)

    def split_sizes(self) -> dict[str, int]:
        """Products per split: valid and test get their fraction (at least 3), train the rest."""
        n_valid = max(3, round(self.products * self.valid_fraction))
        n_test = max(3, round(self.products * self.test_fraction))
        n_train = self.products - n_valid - n_test
        if n_train < 3:
            raise ValueError(
                f"{self.products} products leave {n_train} for training with these fractions; "
                "need at least 3"
            )
        return {"train": n_train, "valid": n_valid, "test": n_test}


@dataclass(frozen=True)
class Outfit:
    """Products worn together; ``n_scenes`` full scenes (1–2), maybe one partial crop.

    ``fillers`` are garments the figure also wears that are not products (a top or a bottom
    where the outfit has none), so figures are dressed; no query ever asks for them.
    """

    outfit_id: int
    split: str
    product_ids: tuple[int, ...]
    items: tuple[ItemSpec, ...]
    n_scenes: int
    partial: bool
    fillers: tuple[ItemSpec, ...] = ()


@dataclass(frozen=True)
class DistractorSpec:
    """One distractor: an extra product never used as a target."""

    index: int
    split: str
    item: ItemSpec


def compatible(category: str, chosen: list[str]) -> bool:
    """Whether ``category`` can be worn with all of ``chosen`` (distinct, not exclusive)."""
    banned = EXCLUSIVE.get(category, frozenset())
    return category not in chosen and not banned.intersection(chosen)


def outfit_categories(k: int, rng: np.random.Generator) -> list[str]:
    """``k`` distinct compatible categories in random order."""
    chosen: list[str] = []
    for idx in rng.permutation(len(LRVSF_CATEGORIES)):
        category = LRVSF_CATEGORIES[int(idx)]
        if compatible(category, chosen):
            chosen.append(category)
            if len(chosen) == k:
                return chosen
    raise AssertionError(f"cannot build an outfit of {k} compatible categories")


def partition(n: int, rng: np.random.Generator) -> list[int]:
    """Random outfit sizes in {3, 4, 5} summing exactly to ``n`` (``n`` ≥ 3)."""
    sizes: list[int] = []
    remaining = n
    while remaining:
        allowed = [s for s in OUTFIT_SIZES if remaining - s == 0 or remaining - s >= 3]
        size = allowed[int(rng.integers(len(allowed)))]
        sizes.append(size)
        remaining -= size
    return sizes


def filler_categories(categories: list[str], rng: np.random.Generator) -> list[str]:
    """Garments to add (usually) where ``categories`` leave the torso or the legs bare."""
    if "Whole Body" in categories:
        return []
    return [c for c in ("Lower Body", "Upper Body") if c not in categories and rng.random() < 0.85]


def plan_outfits(config: SynthConfig) -> list[Outfit]:
    """All outfits, train first, then valid, then test; product ids are 1…N in that order."""
    rng = np.random.default_rng([config.seed, 0])
    outfits: list[Outfit] = []
    next_pid = 1
    for split, n in config.split_sizes().items():
        for size in partition(n, rng):
            categories = outfit_categories(size, rng)
            items = tuple(sample_item(c, rng) for c in categories)
            fillers = tuple(sample_item(c, rng) for c in filler_categories(categories, rng))
            pids = tuple(range(next_pid, next_pid + size))
            next_pid += size
            outfits.append(
                Outfit(
                    outfit_id=len(outfits),
                    split=split,
                    product_ids=pids,
                    items=items,
                    n_scenes=int(rng.integers(1, 3)),
                    partial=bool(rng.random() < config.partial_probability),
                    fillers=fillers,
                )
            )
    return outfits


def plan_distractors(config: SynthConfig, split: str) -> list[DistractorSpec]:
    """``config.distractors`` random products of uniformly drawn categories for ``split``."""
    rng = np.random.default_rng([config.seed, 1, SPLITS.index(split)])
    out = []
    for i in range(config.distractors):
        category = LRVSF_CATEGORIES[int(rng.integers(len(LRVSF_CATEGORIES)))]
        out.append(DistractorSpec(i, split, sample_item(category, rng)))
    return out
