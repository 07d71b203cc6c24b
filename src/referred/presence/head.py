"""The presence head: P(an item of the asked condition is worn | scene features)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Presence:
    """The answer for one photo and condition: ``probability`` (calibrated) that the item is
    worn, and ``present`` = probability ≥ the head's ``threshold``."""

    present: bool
    probability: float

    def as_dict(self) -> dict[str, Any]:
        return {"present": self.present, "probability": round(self.probability, 4)}


class PresenceHead(nn.Module):
    """Attention pooling of scene features by the condition, then a small MLP → one logit.

    The condition enters as the CondViT's own condition token (``model.condition_token(c)``,
    width W), so category and text conditions share the head. Each of ``heads`` heads pools
    the (layer-normed) features with a query made from the condition; the pooled vector and
    the query go through an MLP. ``a`` and ``b`` (Platt scaling, fitted on held-out scenes)
    turn logits into calibrated probabilities; ``threshold`` decides ``present``.
    ``feature_kind`` records which features it was fitted on (:mod:`referred.presence.features`).
    """

    def __init__(
        self,
        feature_dim: int,
        cond_width: int,
        hidden: int = 128,
        heads: int = 4,
        feature_kind: str = "trunk",
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        if feature_kind not in ("trunk", "tokens"):
            raise ValueError(f"feature_kind must be 'trunk' or 'tokens', got {feature_kind!r}")
        self.feature_dim, self.cond_width = int(feature_dim), int(cond_width)
        self.hidden, self.heads, self.feature_kind = int(hidden), int(heads), feature_kind
        self.norm = nn.LayerNorm(feature_dim)
        self.kv = nn.Linear(feature_dim, 2 * hidden)
        self.q = nn.Linear(cond_width, hidden)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.register_buffer("a", torch.tensor(1.0))
        self.register_buffer("b", torch.tensor(0.0))
        self.register_buffer("threshold", torch.tensor(0.5))

    def config(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "cond_width": self.cond_width,
            "hidden": self.hidden,
            "heads": self.heads,
            "feature_kind": self.feature_kind,
        }

    def forward(self, features: torch.Tensor, cond_tokens: torch.Tensor) -> torch.Tensor:
        """Features (B, N, C) and condition tokens (K, W) → logits (B, K): every scene against
        every condition (the features are projected once per scene)."""
        if features.ndim != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"features must have shape (B, N, {self.feature_dim}), got {tuple(features.shape)}"
            )
        if cond_tokens.ndim != 2 or cond_tokens.shape[-1] != self.cond_width:
            raise ValueError(
                f"condition tokens must have shape (K, {self.cond_width}), "
                f"got {tuple(cond_tokens.shape)}"
            )
        b, n, _ = features.shape
        k, hd = cond_tokens.shape[0], self.hidden // self.heads
        keys, values = self.kv(self.norm(features)).chunk(2, dim=-1)  # (B, N, H·hd) each
        keys, values = keys.view(b, n, self.heads, hd), values.view(b, n, self.heads, hd)
        q = self.q(cond_tokens)  # (K, H·hd)
        scores = torch.einsum("khd,bnhd->bkhn", q.view(k, self.heads, hd), keys) * hd**-0.5
        pooled = torch.einsum("bkhn,bnhd->bkhd", scores.softmax(-1), values).reshape(b, k, -1)
        z = torch.cat([pooled, q.expand(b, k, -1)], dim=-1)  # (B, K, 2·hidden)
        return self.mlp(z).squeeze(-1)

    def probability(self, features: torch.Tensor, cond_tokens: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities (B, K)."""
        return torch.sigmoid(self.a * self.forward(features, cond_tokens) + self.b)

    def loss(self, features: torch.Tensor, cond_tokens: torch.Tensor, worn: torch.Tensor):
        """Binary cross-entropy of the logits (B, K) against 0/1 ``worn`` (B, K)."""
        return F.binary_cross_entropy_with_logits(self.forward(features, cond_tokens), worn)
