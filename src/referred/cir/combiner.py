"""The Combiner: (query item's embedding, modification text's embedding) → target embedding.

After CLIP4Cir's Combiner (Baldrati et al., 2022): both inputs are projected to a hidden
width and concatenated; from that, a small network predicts a correction of the image vector
and a scalar that mixes in the text, projected into the catalog space::

    hi = relu(W_i q)               (B, H)    q: the CondViT embedding, unit norm (B, D)
    ht = relu(W_t t)               (B, H)    t: the sentence embedding (B, T)
    h  = [hi, ht]                  (B, 2H)
    λ  = sigmoid(w_λ relu(W_m h))  (B, 1)
    out = normalize((1 - λ) q + λ W_p ht + W_o relu(W_c h))     (B, D)

The catalog side stays the CondViT's (frozen), so indexes built with it stay valid. The last
layers start at zero and λ near 0.12, so an untrained Combiner answers close to the image
alone. Pure math: no I/O, no device logic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CombinerConfig:
    """``image_dim``: the CondViT's output width D; ``text_dim``: the sentence encoder's T;
    ``hidden``: H; ``dropout`` on the projections while training."""

    image_dim: int
    text_dim: int
    hidden: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("image_dim", "text_dim", "hidden"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CombinerConfig:
        """Unknown keys fail loudly (a newer file, or a typo)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Combiner config keys {unknown}; known: {sorted(known)}")
        return cls(**d)


class Combiner(nn.Module):
    """See the module docstring; ``forward(q (B, D), t (B, T)) → (B, D)`` unit rows."""

    def __init__(self, config: CombinerConfig) -> None:
        super().__init__()
        self.config = config
        d, t, h = config.image_dim, config.text_dim, config.hidden
        self.image_proj = nn.Linear(d, h)
        self.text_proj = nn.Linear(t, h)
        self.mix_hidden = nn.Linear(2 * h, h // 2)
        self.mix_out = nn.Linear(h // 2, 1)
        self.text_to_image = nn.Linear(h, d)
        self.delta_hidden = nn.Linear(2 * h, h)
        self.delta_out = nn.Linear(h, d)
        self.dropout = nn.Dropout(config.dropout)
        nn.init.zeros_(self.delta_out.weight)
        nn.init.zeros_(self.delta_out.bias)
        nn.init.zeros_(self.text_to_image.weight)
        nn.init.zeros_(self.text_to_image.bias)
        nn.init.zeros_(self.mix_out.weight)
        nn.init.constant_(self.mix_out.bias, -2.0)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``image`` (B, D) unit CondViT embeddings, ``text`` (B, T) sentence embeddings →
        (B, D) unit vectors in the catalog space."""
        hi = self.dropout(F.relu(self.image_proj(image)))  # (B, H)
        ht = self.dropout(F.relu(self.text_proj(text)))  # (B, H)
        h = torch.cat([hi, ht], dim=-1)  # (B, 2H)
        mix = torch.sigmoid(self.mix_out(F.relu(self.mix_hidden(h))))  # (B, 1)
        delta = self.delta_out(self.dropout(F.relu(self.delta_hidden(h))))  # (B, D)
        out = (1 - mix) * image + mix * self.text_to_image(ht) + delta
        return F.normalize(out, dim=-1)
