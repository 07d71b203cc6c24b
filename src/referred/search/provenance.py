"""Which model built an index: a record kept in ``index.info`` and the checks made against it.

The record names the model (path or hub id as given, architecture, conditioning), its output
dimension and a fingerprint of its weights. A Searcher refuses a model whose dimension differs
from the index's, and warns when the fingerprint differs (other weights: scores are then
meaningless, unless the same weights were merely converted to another file).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch

from referred.search.errors import IndexMismatchError

log = logging.getLogger(__name__)


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) of the weights: names, dtypes, shapes and bytes.

    About 0.3 s per 100M float32 parameters here.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def model_record(model: Any, ref: str | None = None) -> dict[str, Any]:
    """What ``index.info["model"]`` holds; ``ref`` is the path or hub id the model came from."""
    cfg = model.config
    return {
        "path": None if ref is None else str(ref),
        "name": cfg.name,
        "conditioning": cfg.conditioning,
        "categories": list(cfg.categories),
        "cond_dim": cfg.cond_dim,
        "text_encoder": cfg.text_encoder,
        "output_dim": cfg.output_dim,
        "fingerprint": fingerprint(model),
    }


def check_model(model: Any, index: Any) -> bool | None:
    """Raise IndexMismatchError when the dimensions differ; True / False when the weights
    match / differ from those recorded at build time, None when nothing was recorded."""
    dim = model.config.output_dim
    recorded = (getattr(index, "info", None) or {}).get("model") or {}
    if index.dim != dim:
        built = f" (built with {recorded.get('path') or recorded.get('name')})" if recorded else ""
        raise IndexMismatchError(
            f"the model outputs {dim}-d embeddings but the index holds {index.dim}-d "
            f"vectors{built}; search with the model that built the index"
        )
    if not recorded.get("fingerprint"):
        return None
    same = fingerprint(model) == recorded["fingerprint"]
    if not same:
        log.warning(
            "the index was built with other weights (%s, fingerprint %s); results are only "
            "meaningful if this model embeds like that one",
            recorded.get("path") or recorded.get("name"),
            recorded["fingerprint"],
        )
    return same
