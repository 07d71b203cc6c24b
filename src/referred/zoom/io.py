"""A locator on disk, beside its model: ``locator.safetensors`` + ``locator.json``."""

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

WEIGHTS, CONFIG = "locator.safetensors", "locator.json"
FORMAT = "referred.locator"


def save_locator(
    directory: str | Path, head: Locator, grow: float, report: dict[str, Any] | None = None
) -> None:
    """Write the locator (weights, config, the close-up's margin ``grow``) into ``directory``,
    atomically per file; ``report`` (what fitting measured; default: the one it was loaded
    with) is kept in the JSON for people."""
    record = {
        "format": FORMAT,
        "format_version": 1,
        "head": head.config(),
        "grow": float(grow),
        "report": report_to_save(head, report),
    }
    save_side_head(directory, WEIGHTS, CONFIG, head, record)


def attach(model: Any, head: Locator | None, grow: float | None = None) -> None:
    """Give ``model`` its locator as plain attributes ``model.locator`` and ``model.zoom_grow``
    (not a submodule: the CondViT's weights and fingerprint do not change; the head stays on
    the CPU, it is small)."""
    object.__setattr__(model, "locator", None if head is None else head.cpu().eval())
    object.__setattr__(model, "zoom_grow", grow)


def load_locator(directory: str | Path, cond_width: int) -> tuple[Locator, float] | None:
    """(the locator saved in ``directory``, its ``grow``), or None when there is none.
    ``cond_width`` is the model's width: a locator fitted on another model is refused."""
    d = Path(directory)
    try:
        record = read_side_record(d, CONFIG, FORMAT)
        if record is None:
            return None
        # a locator fitted before FiLM has no "film" key: its condition was only added
        head, grow = Locator(**{"film": False, **record["head"]}), float(record["grow"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / CONFIG} is not a locator: {exc}") from None
    check_width(d / CONFIG, head.cond_width, cond_width)
    return load_side_weights(d, WEIGHTS, head, record), grow
