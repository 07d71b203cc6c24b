"""A presence head on disk, beside its model: ``presence.safetensors`` + ``presence.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from referred.presence.head import PresenceHead

WEIGHTS, CONFIG = "presence.safetensors", "presence.json"
FORMAT = "referred.presence"


def save_head(directory: str | Path, head: PresenceHead, report: dict[str, Any] | None = None):
    """Write the head (weights, config, calibration) into ``directory``, atomically per file;
    ``report`` (what fitting measured) is kept in the JSON for people to read."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = d / f".{WEIGHTS}.{os.getpid()}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(d / WEIGHTS)
    record = {"format": FORMAT, "format_version": 1, "head": head.config(), "report": report or {}}
    tmp = d / f".{CONFIG}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(d / CONFIG)


def attach(model: Any, head: PresenceHead | None) -> None:
    """Give ``model`` its presence head as a plain attribute, ``model.presence_head``: not a
    submodule, so the CondViT's own weights (and its fingerprint) do not change; the head
    stays on the CPU (it is small) wherever the model goes."""
    object.__setattr__(model, "presence_head", None if head is None else head.cpu().eval())


def load_head(directory: str | Path, cond_width: int) -> PresenceHead | None:
    """The head saved in ``directory`` (None when there is none). ``cond_width`` is the
    model's width: a head fitted on another model is refused with a ValueError."""
    d = Path(directory)
    if not (d / CONFIG).is_file():
        return None
    from safetensors.torch import load_file

    try:
        record = json.loads((d / CONFIG).read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT!r}")
        head = PresenceHead(**record["head"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / CONFIG} is not a presence head: {exc}") from None
    if head.cond_width != cond_width:
        raise ValueError(
            f"{d / CONFIG} was fitted on a model of width {head.cond_width}, this one has "
            f"width {cond_width}"
        )
    head.load_state_dict(load_file(str(d / WEIGHTS)))
    return head.eval()
