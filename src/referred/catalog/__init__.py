"""Offline catalog jobs: embed a catalog, build its index (locally or on Ray), the demo's index.

    from referred.catalog import build_catalog_index
    report = build_catalog_index(model, "catalog.index", source="catalog.parquet")

Nothing here serves requests; the service (:mod:`referred.web`) only loads what these write.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BuildReport": "referred.catalog.build",
    "build_catalog_index": "referred.catalog.build",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'referred.catalog' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
