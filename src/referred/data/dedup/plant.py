"""Planted near-duplicates, to measure a dedup setting: the edits a re-uploaded or scraped copy
of a product photo goes through. Each takes a PIL image and a generator, returns JPEG bytes.

- ``reencode``: JPEG quality 30-70;
- ``resize``: scaled to 40-80 % of its side (bicubic);
- ``crop``: 2-6 % cut from each side (independently);
- ``jitter``: brightness, contrast (each x0.75-1.25) and saturation (x0.6-1.4).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def reencode(img: Image.Image, rng: np.random.Generator) -> bytes:
    return _jpeg(img, int(rng.integers(30, 71)))


def resize(img: Image.Image, rng: np.random.Generator) -> bytes:
    s = rng.uniform(0.4, 0.8)
    size = (max(8, round(img.width * s)), max(8, round(img.height * s)))
    return _jpeg(img.resize(size, Image.Resampling.BICUBIC))


def crop(img: Image.Image, rng: np.random.Generator) -> bytes:
    w, h = img.size
    left, top, right, bottom = rng.uniform(0.02, 0.06, 4)
    box = (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
    return _jpeg(img.crop(box))


def jitter(img: Image.Image, rng: np.random.Generator) -> bytes:
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
    return _jpeg(ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4)))


EDITS: dict[str, Callable[[Image.Image, np.random.Generator], bytes]] = {
    "reencode": reencode,
    "resize": resize,
    "crop": crop,
    "jitter": jitter,
}


def plant(img: Image.Image, edit: str, seed: int) -> bytes:
    """A near-duplicate of ``img`` made by ``edit`` (one of :data:`EDITS`), seeded."""
    if edit not in EDITS:
        raise ValueError(f"unknown edit {edit!r}; expected one of {tuple(EDITS)}")
    return EDITS[edit](img, np.random.default_rng(seed))
