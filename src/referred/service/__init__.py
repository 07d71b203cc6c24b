"""Serving referred visual search: the Searcher (no web framework) and the catalog build.

    from referred.service import Searcher
    searcher = Searcher(referred.load_model("model/"), load_index("catalog.index"))
    hits = searcher.search("scene.jpg", category="Bags", k=10)      # list[Hit]
    looks = searcher.shop_the_look("scene.jpg")                     # {category: list[Hit]}

Errors a request can cause are in :data:`USER_ERRORS` (map them to 4xx). Names are imported on
first use, so importing this package (e.g. from the web app's module) costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Hit": "referred.service.searcher",
    "Searcher": "referred.service.searcher",
    "Condition": "referred.service.conditions",
    "BuildReport": "referred.service.catalog_build",
    "build_catalog_index": "referred.service.catalog_build",
    "IndexMismatchError": "referred.service.errors",
    "QueryError": "referred.service.errors",
    "SearchError": "referred.service.errors",
    "UnknownCategoryError": "referred.service.errors",
    "UnknownProductError": "referred.service.errors",
    "UnsupportedConditionError": "referred.service.errors",
    "USER_ERRORS": "referred.service.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'referred.service' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
