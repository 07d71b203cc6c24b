"""A locator on disk, beside its model: ``locator.safetensors`` + ``locator.json``.

The JSON keeps the head's config and the views a query is embedded as
(:class:`referred.zoom.views.Views`: ``"views": {"grows": [...], "flip": ...}``); ``"grow"``,
the first margin, is kept too for readers from before views (a locator saved before has
``"grow"`` only: one close-up at that margin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from referred.model.side_heads import (
    check_width,
    load_side_weights,
    read_side_record,
    report_to_save,
    save_side_head,
)
from referred.zoom.head import Locator
from referred.zoom.views import Views

WEIGHTS, CONFIG = "locator.safetensors", "locator.json"
FORMAT = "referred.locator"


def save_locator(
    directory: str | Path,
    head: Locator,
    views: Views | float,
    report: dict[str, Any] | None = None,
) -> None:
    """Write the locator (weights, config, the views of a query: :class:`Views`, or one
    margin) into ``directory``, atomically per file; ``report`` (what fitting measured;
    default: the one it was loaded with) is kept in the JSON for people."""
    views = as_views(views)
    record = {
        "format": FORMAT,
        "format_version": 1,
        "head": head.config(),
        "grow": views.grows[0],
        "views": views.record(),
        "report": report_to_save(head, report),
    }
    save_side_head(directory, WEIGHTS, CONFIG, head, record)


def as_views(views: Views | float) -> Views:
    """:class:`Views` as given, or one close-up at margin ``views``."""
    return views if isinstance(views, Views) else Views((float(views),))


def attach(model: Any, head: Locator | None, views: Views | float | None = None) -> None:
    """Give ``model`` its locator as plain attributes ``model.locator`` and ``model.zoom_views``
    (not a submodule: the CondViT's weights and fingerprint do not change; the head stays on
    the CPU, it is small)."""
    object.__setattr__(model, "locator", None if head is None else head.cpu().eval())
    object.__setattr__(model, "zoom_views", None if views is None else as_views(views))


def load_locator(directory: str | Path, cond_width: int) -> tuple[Locator, Views] | None:
    """(the locator saved in ``directory``, its views), or None when there is none.
    ``cond_width`` is the model's width: a locator fitted on another model is refused."""
    d = Path(directory)
    try:
        record = read_side_record(d, CONFIG, FORMAT)
        if record is None:
            return None
        # a locator fitted before FiLM has no "film" key: its condition was only added
        head = Locator(**{"film": False, **record["head"]})
        views = (
            Views.from_record(record["views"]) if "views" in record else as_views(record["grow"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / CONFIG} is not a locator: {exc}") from None
    check_width(d / CONFIG, head.cond_width, cond_width)
    return load_side_weights(d, WEIGHTS, head, record), views
