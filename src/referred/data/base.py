"""The reader interface every layout implements: products and distractors of a split."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from referred.data.records import Distractor, Product, ReadStats

#: Accepted spellings of split names, mapped to the canonical one.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "test": "test",
    "catalog": "catalog",
}


class Dataset(abc.ABC):
    """A dataset folder (or file) in one layout; iterate its products and distractors.

    Iteration streams: nothing but the current product (plus a bounded buffer documented by
    each layout) is held in memory. Pass a :class:`ReadStats` to collect what was skipped;
    ``verify=True`` decodes every image and skips the corrupt ones.
    """

    layout: ClassVar[str]

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """Splits that have products, e.g. ``("train", "valid", "test")``."""

    @property
    def distractor_splits(self) -> tuple[str, ...]:
        """Splits that have distractors."""
        return ()

    @abc.abstractmethod
    def products(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Product]:
        """Stream the products of ``split``."""

    def distractors(
        self, split: str, *, stats: ReadStats | None = None, verify: bool = False
    ) -> Iterator[Distractor]:
        """Stream the distractors of ``split`` (none by default)."""
        self._split(split, self.distractor_splits, "distractor split")
        return iter(())

    def _split(self, split: str, available: tuple[str, ...], what: str = "split") -> str:
        name = SPLIT_ALIASES.get(str(split).strip().lower())
        if name is None or name not in available:
            raise ValueError(
                f"{self.layout} dataset {self.root} has no {what} {split!r}; "
                f"available: {', '.join(available) or 'none'}"
            )
        return name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"
