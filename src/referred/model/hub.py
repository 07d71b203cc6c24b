"""Downloading checkpoints from the Hugging Face hub (``Slep/CondViT-B16-cat`` and alike).

Only what the vision model needs is fetched: ``config.json`` and the weights; for a sharded
checkpoint, only the shards holding non-``lm.*`` keys (the text model's 5 GB sentence encoder is
loaded separately, by name, when free text is embedded). Offline, the error says what to pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from referred.model.checkpoints import SHARD_INDEX_NAME, WEIGHTS_NAME

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name))


def download(repo_id: str, revision: str | None = None) -> Path:
    """Fetch a CondViT checkpoint into the hub cache; returns the snapshot folder."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("downloading from the hub needs huggingface_hub") from exc

    def fetch(filename: str) -> Path:
        return Path(hf_hub_download(repo_id, filename, revision=revision))

    try:
        config = fetch("config.json")
        try:
            index = fetch(SHARD_INDEX_NAME)
        except EntryNotFoundError:
            fetch(WEIGHTS_NAME)
            return config.parent
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        for shard in sorted({f for k, f in weight_map.items() if not k.startswith("lm.")}):
            fetch(shard)
        return config.parent
    except Exception as exc:
        if isinstance(exc, (ImportError, KeyboardInterrupt)):
            raise
        raise OSError(
            f"cannot download {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{exc}). Without network access, download it on a connected machine "
            f"(`huggingface-cli download {repo_id} --local-dir DIR`), copy DIR here and pass "
            "that folder (or a .pth / .safetensors file) instead of the hub id."
        ) from exc
