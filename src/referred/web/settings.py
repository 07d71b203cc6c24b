"""Service settings: one frozen dataclass, read from ``REFERRED_*`` environment variables.

The command line (``referred serve``) builds the same object from its flags; flags win over the
environment. Nothing here imports the web framework or torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "REFERRED_"
#: Image formats an upload may use (Pillow's names); MPO is how Pillow reports many camera JPEGs.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; see docs/service.md for each field.

    ``admin_token`` enables ``POST /products`` and ``DELETE /products/{id}``; when it is empty
    those endpoints answer 403. ``image_root`` confines every product image the service reads:
    a metadata ``image`` path is resolved under it and refused if it points elsewhere.
    """

    index_dir: Path | None = None
    model_path: str | None = None
    image_root: Path | None = None
    samples_dir: Path | None = None
    upload_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: str = field(default="", repr=False)
    persist_writes: bool = False
    max_upload_bytes: int = 10 * MiB
    max_pixels: int = 40_000_000
    max_text_chars: int = 1000  # referred.query.MAX_TEXT_CHARS (tested); may only be lowered
    max_k: int = 100
    default_k: int = 10
    max_categories: int = 20
    batching: str = "threadpool"  # or "micro": gather concurrent searches into one forward
    max_inflight: int = 2  # Searcher calls running in threads at once; the rest queue (FIFO)
    max_batch: int = 32
    batch_wait_ms: float = 2.0
    threads: int = 1
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "max_text_chars",
            "max_k",
            "max_batch",
            "max_inflight",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        from referred.query import MAX_TEXT_CHARS  # here: settings load without torch

        if self.max_text_chars > MAX_TEXT_CHARS:
            raise ValueError(
                f"max_text_chars must be at most {MAX_TEXT_CHARS} (the text limit of every "
                f"query), got {self.max_text_chars}"
            )
        if not 1 <= self.default_k <= self.max_k:
            raise ValueError(f"default_k must be in 1..max_k ({self.max_k}), got {self.default_k}")
        if self.batching not in ("micro", "threadpool"):
            raise ValueError(f"batching must be 'micro' or 'threadpool', got {self.batching!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.batch_wait_ms < 0 or self.threads < 1:
            raise ValueError("batch_wait_ms must be >= 0 and threads >= 1")

    @property
    def writes_enabled(self) -> bool:
        return bool(self.admin_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``REFERRED_<FIELD>`` variables, then ``overrides`` (non-None only).

        ``REFERRED_INDEX``, ``REFERRED_MODEL``, ``REFERRED_IMAGES`` and ``REFERRED_SAMPLES`` are
        accepted as short names for the path fields. A value that does not parse raises
        ``ValueError`` naming the variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        aliases = {
            "INDEX": "index_dir",
            "MODEL": "model_path",
            "IMAGES": "image_root",
            "SAMPLES": "samples_dir",
            "UPLOADS": "upload_dir",
        }
        kinds = {f.name: f.type for f in fields(cls)}
        for f in fields(cls):
            names = [ENV_PREFIX + f.name.upper()]
            names += [ENV_PREFIX + a for a, target in aliases.items() if target == f.name]
            for name in names:
                if name in env and env[name] != "":
                    values[f.name] = _parse(name, env[name], str(kinds[f.name]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("index_dir", "image_root", "samples_dir", "upload_dir"):
            if isinstance(values.get(key), str):
                values[key] = Path(values[key])
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _parse(name: str, raw: str, kind: str) -> Any:
    try:
        if "bool" in kind:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind}") from None
