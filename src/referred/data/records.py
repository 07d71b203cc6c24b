"""The one record model every reader yields, and the counters of what readers skipped.

A :class:`Product` gathers the images of one product: its SIMPLE images (the product alone,
the gallery side) and its COMPLEX / PARTIAL_COMPLEX images (worn in a scene, the query side).
A :class:`Distractor` is one extra gallery image. Images carry their encoded bytes, a path to
read them from lazily, or neither (metadata-only layouts, where only the URL is known).

Readers never raise on a bad item: they skip it, count it in a :class:`ReadStats` and record a
:class:`Problem` naming the file and the product or distractor id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PIL import Image

from referred.imageio import open_image

log = logging.getLogger(__name__)


class DataFileError(ValueError):
    """A file unusable as a whole (missing, unreadable, or lacking a required column)."""


class ImageType(str, Enum):
    """The ``TYPE`` of an LRVS-F image."""

    SIMPLE = "SIMPLE"
    COMPLEX = "COMPLEX"
    PARTIAL_COMPLEX = "PARTIAL_COMPLEX"

    @classmethod
    def parse(cls, value: object) -> ImageType:
        """``ImageType`` from a string such as ``"simple"`` or ``"PARTIAL_COMPLEX"``."""
        if isinstance(value, ImageType):
            return value
        key = str(value).strip().upper().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            accepted = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown image TYPE {value!r}; expected one of: {accepted}") from None

    @property
    def is_complex(self) -> bool:
        """True for COMPLEX and PARTIAL_COMPLEX (the query side)."""
        return self is not ImageType.SIMPLE


@dataclass(frozen=True)
class ImageRecord:
    """One image: where it came from, its role, and its encoded bytes (or how to get them).

    ``data`` holds the encoded bytes when the layout stores them; ``path`` points to a file that
    :meth:`read_bytes` reads on demand; both are ``None`` in metadata-only layouts. ``meta`` is
    the image's metadata row (Hugging Face column names), read-only by convention.
    """

    url: str | None
    type: ImageType
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_bytes(self) -> bool:
        """Whether the encoded image can be read (stored bytes or a path)."""
        return self.data is not None or self.path is not None

    def read_bytes(self) -> bytes:
        """The encoded image; raises ``ValueError`` for a metadata-only record."""
        if self.data is not None:
            return self.data
        if self.path is not None:
            if not self.path.is_file():
                raise FileNotFoundError(f"image file not found: {self.path}")
            return self.path.read_bytes()
        raise ValueError(
            f"image {self.url!r} has no bytes (metadata-only layout); fetch the images with "
            "img2dataset and build a trainable folder with `referred data prepare`"
        )

    def open(self) -> Image.Image:
        """The decoded RGB image (see :func:`referred.imageio.open_image`)."""
        return open_image(self.read_bytes())


@dataclass(frozen=True)
class Product:
    """One product: its simple (gallery) images, its complex (query) images, and its text.

    ``product_id`` is always a string (LRVS-F stores integers). ``category`` is one of
    :data:`referred.categories.LRVSF_CATEGORIES` or ``None`` (user catalogs only). ``complex``
    holds COMPLEX and PARTIAL_COMPLEX images. ``captions`` are the distinct non-empty BLIP2
    captions of the SIMPLE images (or a catalog's title). ``split`` is ``"train"``,
    ``"valid"``, ``"test"`` or ``"catalog"``.
    """

    product_id: str
    category: str | None
    simple: tuple[ImageRecord, ...]
    complex: tuple[ImageRecord, ...]
    captions: tuple[str, ...] = ()
    split: str | None = None

    @property
    def images(self) -> tuple[ImageRecord, ...]:
        """All images, simple first."""
        return self.simple + self.complex


@dataclass(frozen=True)
class Distractor:
    """One extra gallery image that is not the target of any query.

    ``distractor_id`` is the metadata row label when the layout has one (the labels that
    ``bootstrap_IDs.pkl`` refers to), else a tar key or the URL.
    """

    distractor_id: str
    image: ImageRecord
    category: str | None
    split: str | None = None


class Severity(str, Enum):
    """ERROR: the item is skipped by readers, or files disagree. WARNING: kept, but odd."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem found while reading: which file, which item, what kind, and details."""

    severity: Severity
    kind: str
    file: str
    item: str | None
    detail: str

    def __str__(self) -> str:
        item = f" [{self.item}]" if self.item is not None else ""
        return f"{self.severity.value.upper()} {self.file}{item}: {self.kind}: {self.detail}"


@dataclass
class ReadStats:
    """Counters of what a reader yielded and skipped, plus the first problems in detail.

    ``counts`` counts yielded things (``products``, ``images``, ``distractors``);
    ``problem_counts`` counts problems by kind (all of them); ``problems`` keeps the first
    ``max_problems`` in full so that memory stays bounded on a huge, broken dataset.
    """

    max_problems: int = 10_000
    counts: Counter = field(default_factory=Counter)
    problem_counts: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    errors: int = 0
    warnings: int = 0

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` yielded things called ``name``."""
        self.counts[name] += n

    def report(
        self, severity: Severity, kind: str, file: str | Path, item: object, detail: str
    ) -> None:
        """Record one problem (kept in full while under ``max_problems``)."""
        problem = Problem(severity, kind, str(file), None if item is None else str(item), detail)
        self.problem_counts[kind] += 1
        if severity is Severity.ERROR:
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)
        log.debug("%s", problem)

    def error(self, kind: str, file: str | Path, item: object, detail: str) -> None:
        """Shorthand for :meth:`report` with ``Severity.ERROR``."""
        self.report(Severity.ERROR, kind, file, item, detail)

    def warn(self, kind: str, file: str | Path, item: object, detail: str) -> None:
        """Shorthand for :meth:`report` with ``Severity.WARNING``."""
        self.report(Severity.WARNING, kind, file, item, detail)

    def merge(self, other: ReadStats) -> None:
        """Add ``other``'s counts and problems (e.g. a worker process's) to these."""
        self.counts.update(other.counts)
        self.problem_counts.update(other.problem_counts)
        self.errors += other.errors
        self.warnings += other.warnings
        room = max(self.max_problems - len(self.problems), 0)
        self.problems.extend(other.problems[:room])

    def summary(self) -> str:
        """One line: yielded counts, then problem counts by kind."""
        yielded = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "nothing"
        skipped = ", ".join(f"{n} {k}" for k, n in sorted(self.problem_counts.items()))
        return f"read {yielded}" + (f"; problems: {skipped}" if skipped else "")
