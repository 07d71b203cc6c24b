"""Turn a product's loose images into a :class:`Product`, or skip it with the reason recorded.

Every reader ends here, so the rules are the same in every layout: corrupt images are dropped
(when ``verify`` is on), a product needs a SIMPLE and (unless told otherwise) a COMPLEX image,
and its category must be one of the ten LRVS-F categories.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from referred.categories import LRVSF_CATEGORIES, category_index
from referred.data.records import Distractor, ImageRecord, ImageType, Product, ReadStats
from referred.imageio import ImageDecodeError, open_image

CAPTION_KEYS: tuple[str, ...] = ("blip2_caption1", "blip2_caption2")


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN and blank strings (how parquet/pandas spell "no value")."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def canonical_category(value: Any) -> str | None:
    """The published spelling of a category (case/``_``/``-`` insensitive), ``None`` if missing.

    Raises ``ValueError`` (naming the accepted ones) for an unknown category.
    """
    if is_missing(value):
        return None
    text = str(value).strip().replace("_", " ").replace("-", " ")
    return LRVSF_CATEGORIES[category_index(text)]


def verify_image(record: ImageRecord, stats: ReadStats, file: str, item: str) -> bool:
    """Decode ``record`` fully; on failure record ``corrupt-image``/``missing-image``, False."""
    if not record.has_bytes:
        return True
    source = record.data if record.data is not None else record.path
    try:
        open_image(source)
    except ImageDecodeError as exc:
        where = f"{record.url}: " if record.data is not None and record.url else ""
        stats.error("corrupt-image", file, item, f"{where}{exc}")
        return False
    except FileNotFoundError as exc:
        stats.error("missing-image", file, item, str(exc))
        return False
    return True


def captions_of(images: Iterable[ImageRecord], extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Distinct non-empty captions of ``images`` (in order), then ``extra``."""
    seen: dict[str, None] = {}
    for record in images:
        for key in CAPTION_KEYS:
            value = record.meta.get(key)
            if not is_missing(value):
                seen.setdefault(str(value).strip(), None)
    for text in extra:
        if not is_missing(text):
            seen.setdefault(str(text).strip(), None)
    return tuple(seen)


def build_product(
    product_id: str,
    images: Sequence[ImageRecord],
    *,
    split: str | None,
    file: str,
    stats: ReadStats,
    verify: bool = False,
    require_complex: bool = True,
    category: Any = None,
    extra_captions: Sequence[str] = (),
) -> Product | None:
    """A :class:`Product` from its images, or ``None`` (and a recorded error) if unusable.

    ``category`` overrides the CATEGORY found in the images' metadata (simple images first).
    """
    if verify:
        images = [r for r in images if verify_image(r, stats, file, product_id)]
    simple = tuple(r for r in images if r.type is ImageType.SIMPLE)
    complex_ = tuple(r for r in images if r.type.is_complex)
    if not simple:
        stats.error("missing-simple", file, product_id, "product has no usable SIMPLE image")
        return None
    if require_complex and not complex_:
        stats.error("missing-complex", file, product_id, "product has no usable COMPLEX image")
        return None
    raw = category if category is not None else _first_category(simple + complex_)
    try:
        canonical = canonical_category(raw)
    except ValueError as exc:
        stats.error("unknown-category", file, product_id, str(exc))
        return None
    if canonical is None and require_complex:
        stats.error("unknown-category", file, product_id, "no CATEGORY on its SIMPLE images")
        return None
    stats.add("products")
    stats.add("images", len(simple) + len(complex_))
    # BLIP2 captions of the SIMPLE images describe the product; those of scenes describe
    # the whole outfit, so they would be ambiguous conditions
    captions = captions_of(simple, extra_captions)
    return Product(product_id, canonical, simple, complex_, captions, split)


def _first_category(images: Iterable[ImageRecord]) -> Any:
    for record in images:
        value = record.meta.get("CATEGORY")
        if not is_missing(value):
            return value
    return None


def build_distractor(
    distractor_id: str,
    image: ImageRecord,
    *,
    split: str | None,
    file: str,
    stats: ReadStats,
    verify: bool = False,
    category: Any = None,
) -> Distractor | None:
    """A :class:`Distractor`, or ``None`` when its image is corrupt (``verify`` on).

    An unknown category is only a warning: the image still works as a distractor.
    """
    if verify and not verify_image(image, stats, file, distractor_id):
        return None
    raw = category if category is not None else image.meta.get("CATEGORY")
    try:
        canonical = canonical_category(raw)
    except ValueError as exc:
        stats.warn("unknown-category", file, distractor_id, f"{exc}; kept without category")
        canonical = None
    stats.add("distractors")
    return Distractor(distractor_id, image, canonical, split)


def clean_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """A metadata row with NaN turned into ``None`` (JSON- and equality-friendly)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
