"""The frozen config of a Combiner training run (``referred train --task cir``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Fields that may change between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = frozenset({"max_minutes", "threads", "progress"})


@dataclass(frozen=True)
class CIRTrainConfig:
    """``data``: a FashionIQ-layout folder; ``model``: the CondViT (file, folder, hub id)
    whose catalog space the Combiner composes in (frozen); ``out``: the run folder.

    Optimisation: AdamW (``lr``, ``weight_decay``), a warm-up epoch then cosine decay over
    ``epochs``, InfoNCE at ``temperature`` against every training image (the candidate left
    out). ``max_minutes`` stops the run (resumably) after the epoch that crosses it.
    ``text_encoder``: the sentence encoder of the modifications (default: the model's own,
    else all-MiniLM-L6-v2 offline).
    """

    data: str
    out: str
    model: str
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    temperature: float = 0.02
    hidden: int = 128
    dropout: float = 0.1
    seed: int = 0
    threads: int | None = None
    max_minutes: float | None = None
    text_encoder: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    embed_batch: int = 32
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "hidden", "embed_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def changes_from(self, saved: dict[str, Any]) -> list[str]:
        """Fields whose value differs from a saved run's (those that change the result)."""
        names = {f.name for f in fields(self)} - RESUMABLE_CHANGES
        mine = self.to_dict()
        return sorted(n for n in names if saved.get(n) != mine[n])
