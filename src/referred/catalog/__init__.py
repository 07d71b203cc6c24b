"""Offline catalog jobs: embed a catalog, build its index (locally or on Ray), the demo's index,
and the one resumable embedding cache they and the benchmark share (:mod:`.cache`).

    from referred.catalog import build_catalog_index
    report = build_catalog_index(model, "catalog.index", source="catalog.parquet")

Nothing here serves requests; the service (:mod:`referred.web`) only loads what these write.
"""

from __future__ import annotations

from referred._lazy import lazy_exports

_LAZY = {
    "BuildReport": "referred.catalog.build",
    "build_catalog_index": "referred.catalog.build",
    "fill_index": "referred.catalog.build",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
