"""The views a zoomed query is embedded as: close-ups at a few margins, each maybe mirrored.

A located box errs both ways: too small, its close-up cuts the item; too large, neighbours and
background enter it. One margin trades one error for the other; the close-ups at two margins
(and each mirrored) err differently, and the mean of their unit vectors retrieves better than
either alone (test-time augmentation: on the thirteenth session's 57.9-minute CPU run, located
R@1 58.3% → 63.7% at +0 on 2,000 test products; docs/benchmarks.md, "Several close-ups per
query"). A :class:`Views` names the margins and whether each close-up is also embedded
mirrored; the locator's fit chooses one on validation pairs
(:func:`referred.zoom.calibrate.calibrate_views`) and saves it; :class:`referred.query.
QueryEncoder` embeds every view and pools them (:func:`pool`). Each view is one more forward of
the CondViT per query.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from referred.zoom.crop import close_up, zoom_pixels


@dataclass(frozen=True)
class Views:
    """Close-ups at each margin of ``grows`` (share of the box's longer side on every side),
    each also mirrored left-right when ``flip``: ``len(grows) × (1 + flip)`` views."""

    grows: tuple[float, ...]
    flip: bool = False

    def __post_init__(self) -> None:
        try:
            grows = tuple(float(g) for g in self.grows)
        except (TypeError, ValueError):
            raise ValueError(f"grows must be numbers, got {self.grows!r}") from None
        if not grows or any(not math.isfinite(g) or g < 0 for g in grows):
            raise ValueError(f"grows must be one or more margins >= 0, got {list(grows)}")
        if len(set(grows)) != len(grows):
            raise ValueError(f"grows must differ from each other, got {list(grows)}")
        if not isinstance(self.flip, (bool, np.bool_)):
            raise ValueError(f"flip must be true or false, got {self.flip!r}")
        object.__setattr__(self, "grows", grows)
        object.__setattr__(self, "flip", bool(self.flip))

    @property
    def count(self) -> int:
        """How many close-ups (forwards of the CondViT) one query takes."""
        return len(self.grows) * (2 if self.flip else 1)

    def label(self) -> str:
        """e.g. ``0.05+0.25 mirrored``: the margins, and whether each is also mirrored."""
        return "+".join(f"{g:g}" for g in self.grows) + (" mirrored" if self.flip else "")

    def record(self) -> dict[str, Any]:
        """What ``locator.json`` keeps (:meth:`from_record` reads it back)."""
        return {"grows": list(self.grows), "flip": self.flip}

    @classmethod
    def from_record(cls, record: Any) -> Views:
        if not isinstance(record, Mapping) or "grows" not in record:
            raise ValueError(f"views must be {{'grows': [...], 'flip': bool}}, got {record!r}")
        grows = record["grows"]
        if isinstance(grows, (str, bytes)) or not isinstance(grows, Iterable):
            raise ValueError(f"views' grows must be a list of margins, got {grows!r}")
        return cls(tuple(grows), record.get("flip", False))

    def parts(self) -> list[tuple[float, bool]]:
        """``(margin, mirrored)`` of each close-up, in the order every view list follows:
        each margin, then its mirror when ``flip``."""
        return [(g, m) for g in self.grows for m in ((False, True) if self.flip else (False,))]

    def cut(self, image: Image.Image, frac: Sequence[float]) -> list[Image.Image]:
        """The close-ups of ``image`` around box ``frac`` (``(cx, cy, w, h)`` fractions of its
        padded square), in :meth:`parts` order."""
        plain = {g: close_up(image, frac, g) for g in self.grows}
        return [ImageOps.mirror(plain[g]) if m else plain[g] for g, m in self.parts()]

    def cut_pixels(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Preprocessed squares (B, 3, R, R) → their close-ups (count, B, 3, R, R), in
        :meth:`parts` order (:func:`referred.zoom.crop.zoom_pixels`)."""
        plain = {g: zoom_pixels(pixels, boxes, g) for g in self.grows}
        return torch.stack([plain[g].flip(-1) if m else plain[g] for g, m in self.parts()])


def pool(vectors: torch.Tensor) -> torch.Tensor:
    """(V, B, D) vectors of V views of B queries → (B, D): the mean of their unit vectors,
    itself made unit length."""
    if vectors.dim() != 3 or not len(vectors):
        raise ValueError(
            f"expected (views, queries, dim) vectors, got shape {tuple(vectors.shape)}"
        )
    return F.normalize(F.normalize(vectors.float(), dim=-1).mean(0), dim=-1)


def candidates(grows: Sequence[float], max_views: int = 4) -> list[Views]:
    """The views calibration tries: each margin alone, then each pair of margins, each plain
    and mirrored, those of at most ``max_views`` close-ups (1: single margins, as before)."""
    if max_views < 1:
        raise ValueError(f"max_views must be at least 1, got {max_views}")
    out = []
    for size in (1, 2):
        for combo in itertools.combinations(sorted(set(float(g) for g in grows)), size):
            for flip in (False, True):
                views = Views(combo, flip)
                if views.count <= max_views:
                    out.append(views)
    return out
