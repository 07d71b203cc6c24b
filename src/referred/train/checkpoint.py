"""Checkpoints of a run: ``best/`` (a model) and ``last/`` (a model plus the training state).

Both are ``save_pretrained`` folders (``config.json`` + ``model.safetensors``), so
``referred.load_model(DIR/best)`` works; ``last/`` adds ``training_state.pt``: optimiser,
gradient scaler, step and epoch, position within the epoch, RNG states of python, numpy and
torch (CPU and CUDA), the metrics history and the best score so far. The learning-rate
schedule and the data order are pure functions of the step and ``(seed, epoch)``, so these
are all a resumed run needs to continue exactly.

A folder is replaced atomically: it is written as ``NAME.tmp``, the old one is renamed
``NAME.old``, the new one takes its name, the old one is deleted. A crash at any point leaves
either ``NAME`` or ``NAME.old`` complete, and :func:`find_checkpoint` picks it up.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from referred.model import CondViT

LAST, BEST = "last", "best"
STATE_FILE = "training_state.pt"
STATE_VERSION = 1


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy (global) and torch, in tensors and plain values only."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": _listify(random.getstate()),
        "numpy": {
            **np_state,
            "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()},
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tupleify(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            **np_state,
            "state": {
                **np_state["state"],
                "key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
            },
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _listify(x: Any) -> Any:
    return [_listify(v) for v in x] if isinstance(x, tuple) else x


def _tupleify(x: Any) -> Any:
    return tuple(_tupleify(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(
    out: Path,
    name: str,
    model: CondViT,
    extra: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write ``out/name`` (model + ``extra`` in config.json, + ``state`` when given) atomically."""
    final, tmp, old = out / name, out / f"{name}.tmp", out / f"{name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, extra=extra)
    if state is not None:
        torch.save({"version": STATE_VERSION, **state}, tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(out: Path, name: str) -> Path | None:
    """The complete ``out/name`` folder, or its ``.old`` copy after an interrupted swap."""
    for candidate in (out / name, out / f"{name}.old"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def load_state(folder: Path) -> dict[str, Any]:
    """The training state of a ``last/`` folder (tensors and plain values only)."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {STATE_FILE}; it is not a resumable checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: training state version {state.get('version')} is not supported")
    return state
