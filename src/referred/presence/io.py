"""A presence head on disk, beside its model: ``presence.safetensors`` + ``presence.json``."""

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
from referred.presence.head import PresenceHead

WEIGHTS, CONFIG = "presence.safetensors", "presence.json"
FORMAT = "referred.presence"


def save_head(directory: str | Path, head: PresenceHead, report: dict[str, Any] | None = None):
    """Write the head (weights, config, calibration) into ``directory``, atomically per file;
    ``report`` (what fitting measured; default: the one it was loaded with) is kept in the JSON
    for people to read."""
    record = {
        "format": FORMAT,
        "format_version": 1,
        "head": head.config(),
        "report": report_to_save(head, report),
    }
    save_side_head(directory, WEIGHTS, CONFIG, head, record)


def attach(model: Any, head: PresenceHead | None) -> None:
    """Give ``model`` its presence head as a plain attribute, ``model.presence_head``: not a
    submodule, so the CondViT's own weights (and its fingerprint) do not change; the head
    stays on the CPU (it is small) wherever the model goes."""
    object.__setattr__(model, "presence_head", None if head is None else head.cpu().eval())


def load_head(directory: str | Path, cond_width: int) -> PresenceHead | None:
    """The head saved in ``directory`` (None when there is none). ``cond_width`` is the
    model's width: a head fitted on another model is refused with a ValueError."""
    d = Path(directory)
    try:
        record = read_side_record(d, CONFIG, FORMAT)
        if record is None:
            return None
        head = PresenceHead(**record["head"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / CONFIG} is not a presence head: {exc}") from None
    check_width(d / CONFIG, head.cond_width, cond_width)
    return load_side_weights(d, WEIGHTS, head, record)
