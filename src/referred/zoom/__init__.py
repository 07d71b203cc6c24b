"""Zoom: find the asked item in the scene, then embed a close-up of it.

A worn item is a few percent of a scene (a belt is ~50 × 10 px of a 256-px photo), so a
CondViT that reads the whole scene at 224 px gives it a token or two. A :class:`Locator` reads
the scene's frozen features (those the presence head reads) and the model's condition token and
predicts the item's box; the query path then embeds the square close-up around that box
(:func:`close_up_window`) with the same condition, and a CondViT trained on close-ups
(``referred data closeups``) matches it to the product photo. The locator is fitted on scenes
whose item boxes are known (:func:`referred.zoom.fit.fit_locator`; the synthetic generator
records them) and saved beside the model (``locator.safetensors`` + ``locator.json``), where
:func:`referred.load_model` finds it; :class:`referred.query.QueryEncoder` then zooms every
conditioned query. Measured: docs/benchmarks.md, "Zoom".
"""

from __future__ import annotations

from referred._lazy import lazy_exports

_LAZY = {
    "GROW": "referred.zoom.boxes",
    "Locator": "referred.zoom.head",
    "attach": "referred.zoom.io",
    "close_up": "referred.zoom.crop",
    "close_up_window": "referred.zoom.boxes",
    "fit_locator": "referred.zoom.fit",
    "from_square": "referred.zoom.boxes",
    "iou": "referred.zoom.boxes",
    "load_locator": "referred.zoom.io",
    "save_locator": "referred.zoom.io",
    "to_square": "referred.zoom.boxes",
    "zoom_pixels": "referred.zoom.crop",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
