"""Lazy package exports: names imported from their module on first use (PEP 562).

    __getattr__, __dir__ = lazy_exports(__name__, {"Searcher": "referred.search.searcher"})

keeps ``import referred.search`` (or ``referred``) cheap: torch and the rest load only when a
name that needs them is first touched. The value is cached in the package's namespace.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str], eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``table`` (name → module) lazily,
    besides the names in ``eager`` that the package defines itself."""
    names = sorted({*table, *eager})

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
