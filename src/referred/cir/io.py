"""A Combiner saved beside its CondViT: ``combiner.safetensors`` in the model's folder.

The file holds the weights (float16: the demo's stays a few hundred KB; loaded as float32)
and, in its metadata, the format, the :class:`CombinerConfig`, the sentence encoder the
Combiner was trained with and a free record (training run, metrics). ``referred.load_model``
attaches what it finds as ``model.cir_head`` (a :class:`CIRHead`, not a submodule: the
CondViT's own weights, and so its fingerprint, do not change).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from referred.cir.combiner import Combiner, CombinerConfig

COMBINER_NAME = "combiner.safetensors"
FORMAT = "referred.combiner"
FORMAT_VERSION = 1


class CombinerFileError(ValueError):
    """A ``combiner.safetensors`` that cannot be read or does not fit its model."""


@dataclass
class CIRHead:
    """A trained Combiner and what it needs at query time: the sentence encoder's name."""

    net: Combiner
    text_encoder: str
    record: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net.eval()


def save_head(
    directory: str | os.PathLike, head: CIRHead, dtype: torch.dtype = torch.float16
) -> Path:
    """Write ``directory/combiner.safetensors`` atomically; returns its path."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in head.net.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(head.net.config.to_dict()),
        "text_encoder": head.text_encoder,
        "record": json.dumps(head.record),
    }
    tmp = d / f".{COMBINER_NAME}.tmp"
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, d / COMBINER_NAME)
    return d / COMBINER_NAME


def load_head(directory: str | os.PathLike, image_dim: int | None = None) -> CIRHead | None:
    """The Combiner saved in ``directory``, or None when there is none. ``image_dim`` (the
    CondViT's output width) is checked when given."""
    path = Path(directory) / COMBINER_NAME
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own types for corrupt files
        raise CombinerFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("format_version") != str(FORMAT_VERSION):
        raise CombinerFileError(
            f"{path}: format {meta.get('format')!r} v{meta.get('format_version')}; this version "
            f"reads {FORMAT!r} v{FORMAT_VERSION}"
        )
    try:
        config = CombinerConfig.from_dict(json.loads(meta["config"]))
        record = json.loads(meta.get("record") or "{}")
    except (KeyError, ValueError, TypeError) as exc:
        raise CombinerFileError(f"{path}: bad Combiner config ({exc})") from exc
    if image_dim is not None and config.image_dim != image_dim:
        raise CombinerFileError(
            f"{path}: the Combiner composes {config.image_dim}-d vectors but the model "
            f"outputs {image_dim}-d ones; it was trained for another model"
        )
    net = Combiner(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CombinerFileError(f"{path}: weights do not fit the config ({exc})") from exc
    return CIRHead(net, str(meta.get("text_encoder") or ""), record)
