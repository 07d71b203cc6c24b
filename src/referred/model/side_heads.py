"""Small heads saved beside a CondViT: ``NAME.safetensors`` (weights) + ``NAME.json`` (record).

The presence head (:mod:`referred.presence.io`) and the locator (:mod:`referred.zoom.io`) are
fitted on a frozen CondViT and travel with it in its folder, where :func:`referred.load_model`
finds them. The JSON record holds ``format``, ``format_version``, the head's constructor
arguments under ``head``, under ``report`` what fitting measured (kept as ``head.report`` when
loaded, so that saving the model again keeps it), and whatever the head's module adds; each
file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn


def save_side_head(
    directory: str | Path, weights: str, config: str, head: nn.Module, record: dict[str, Any]
) -> None:
    """Write ``head``'s state dict as ``directory/weights`` and ``record`` as
    ``directory/config``, atomically per file."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = d / f".{weights}.{os.getpid()}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(d / weights)
    tmp = d / f".{config}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(d / config)


def report_to_save(head: nn.Module, report: dict[str, Any] | None) -> dict[str, Any]:
    """``report`` when given, else the one ``head`` was loaded with (``{}`` for a new head)."""
    return report if report is not None else getattr(head, "report", {})


def read_side_record(directory: str | Path, config: str, fmt: str) -> dict[str, Any] | None:
    """The JSON record ``directory/config`` (None when absent); ValueError (without the path:
    the caller names the file and what it should be) when it is not JSON or its ``format`` is
    not ``fmt``."""
    path = Path(directory) / config
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"unreadable JSON ({exc})") from None
    got = record.get("format") if isinstance(record, dict) else type(record).__name__
    if got != fmt:
        raise ValueError(f"format {got!r}, expected {fmt!r}")
    return record


def check_width(path: Path, fitted: int, width: int) -> None:
    """ValueError when a head fitted on a model of width ``fitted`` meets one of ``width``."""
    if fitted != width:
        raise ValueError(
            f"{path} was fitted on a model of width {fitted}, this one has width {width}"
        )


def load_side_weights(
    directory: str | Path, weights: str, head: nn.Module, record: dict[str, Any]
) -> nn.Module:
    """``head`` with the state dict of ``directory/weights`` loaded, in eval mode, and its
    record's ``report`` as ``head.report``."""
    from safetensors.torch import load_file

    head.load_state_dict(load_file(str(Path(directory) / weights)))
    head.report = record.get("report") or {}
    return head.eval()
