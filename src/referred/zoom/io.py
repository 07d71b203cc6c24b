"""A locator on disk, beside its model: ``locator.safetensors`` + ``locator.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from referred.zoom.head import Locator

WEIGHTS, CONFIG = "locator.safetensors", "locator.json"
FORMAT = "referred.locator"


def save_locator(
    directory: str | Path, head: Locator, grow: float, report: dict[str, Any] | None = None
) -> None:
    """Write the locator (weights, config, the close-up's margin ``grow``) into ``directory``,
    atomically per file; ``report`` (what fitting measured) is kept in the JSON for people."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = d / f".{WEIGHTS}.{os.getpid()}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(d / WEIGHTS)
    record = {
        "format": FORMAT,
        "format_version": 1,
        "head": head.config(),
        "grow": float(grow),
        "report": report or {},
    }
    tmp = d / f".{CONFIG}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(d / CONFIG)


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
    if not (d / CONFIG).is_file():
        return None
    from safetensors.torch import load_file

    try:
        record = json.loads((d / CONFIG).read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT!r}")
        head = Locator(**record["head"])
        grow = float(record["grow"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / CONFIG} is not a locator: {exc}") from None
    if head.cond_width != cond_width:
        raise ValueError(
            f"{d / CONFIG} was fitted on a model of width {head.cond_width}, this one has "
            f"width {cond_width}"
        )
    head.load_state_dict(load_file(str(d / WEIGHTS)))
    return head.eval(), grow
