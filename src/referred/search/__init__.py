"""Referred visual search over an index: the Searcher, with no web framework.

    from referred.search import Searcher
    searcher = Searcher(referred.load_model("model/"), load_index("catalog.index"))
    hits = searcher.search("scene.jpg", category="Bags", k=10)      # list[Hit]
    looks = searcher.shop_the_look("scene.jpg")                     # {category: list[Hit]}

Errors a request can cause are in :data:`USER_ERRORS` (map them to 4xx). Names are imported on
first use, so importing this package (e.g. from the web app's module) costs nothing until used.
"""

from __future__ import annotations

from referred._lazy import lazy_exports

_LAZY = {
    "Hit": "referred.search.searcher",
    "Searcher": "referred.search.searcher",
    "Condition": "referred.query",
    "IndexMismatchError": "referred.search.errors",
    "QueryError": "referred.search.errors",
    "SearchError": "referred.search.errors",
    "UnknownCategoryError": "referred.search.errors",
    "UnknownProductError": "referred.search.errors",
    "UnsupportedConditionError": "referred.search.errors",
    "USER_ERRORS": "referred.search.errors",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
