"""The locator: where in the scene the asked item is, as a box of the padded square."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Locator(nn.Module):
    """Scene features on a g × g grid and the asked condition → a heat map and a box.

    The features are what the presence head reads (:func:`referred.presence.presence_features`:
    a hybrid's trunk map, 14 × 14 × 112 at 224 px), the condition is the CondViT's own
    condition token (width W), so category and text conditions share the head. The condition,
    projected, scales every cell's features channel by channel and is added to them (FiLM,
    ``film=True``; ``False``: added only, the locators fitted before it); two 3 × 3
    convolutions mix neighbours; a 1 × 1 convolution gives one logit per cell (the token is
    layer-normed first: a trained CondViT's tokens are small, norm ~1.4 in 256 dims, and
    without it the condition reached the cells too weakly: validation IoU 0.46 after 5
    epochs, against 0.52 after one and 0.58 after 8 with it). The box's centre is the
    softmax-weighted mean of the cell centres, its width and height (fractions of the square,
    in (0, 1)) come from the heat-weighted features. Trained on the cell holding the true
    centre (cross-entropy), the box (L1) and its overlap (generalised IoU):
    :func:`referred.zoom.fit.fit_locator`. (On 20,000 pairs, 2 epochs, test IoU 0.617 added
    only with L1, 0.626 scaled, 0.682 with the overlap term, 0.696 with both; the centre
    inside the true box for 94.4% → 98.6% of the pairs; docs/benchmarks.md.)

    ``scene_size``: the resolution the scene is preprocessed at for the locator's features
    (None: the model's own input resolution). A CondViT may embed its close-ups at a lower
    resolution than finding a thin item in a whole scene needs; the trunk is convolutional, so
    the locator reads the same trunk's map of the scene at its own size.
    """

    def __init__(
        self,
        feature_dim: int,
        cond_width: int,
        grid: int,
        hidden: int = 128,
        scene_size: int | None = None,
        film: bool = True,
    ) -> None:
        super().__init__()
        if grid < 1 or feature_dim < 1 or cond_width < 1 or hidden < 1:
            raise ValueError("feature_dim, cond_width, grid and hidden must be positive")
        if scene_size is not None and (int(scene_size) != scene_size or scene_size < grid):
            raise ValueError(
                f"scene_size must be None or an integer of at least the grid ({grid}), "
                f"got {scene_size!r}"
            )
        self.feature_dim, self.cond_width = int(feature_dim), int(cond_width)
        self.grid, self.hidden = int(grid), int(hidden)
        self.scene_size = None if scene_size is None else int(scene_size)
        self.inp = nn.Conv2d(feature_dim, hidden, 1)
        self.cond_norm = nn.LayerNorm(cond_width)  # tokens are small (norm ~1.4 in 256 dims)
        self.cond = nn.Linear(cond_width, hidden)
        self.film = bool(film)
        if self.film:  # per-channel scale 1 + gamma(token), starting at 1
            self.gamma = nn.Linear(cond_width, hidden)
            nn.init.zeros_(self.gamma.weight)
            nn.init.zeros_(self.gamma.bias)
        self.body = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
        )
        self.heat = nn.Conv2d(hidden, 1, 1)
        self.size = nn.Linear(hidden, 2)
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("centres", torch.stack([xx.flatten(), yy.flatten()], 1), False)

    def config(self) -> dict[str, Any]:
        return {
            "feature_dim": self.feature_dim,
            "cond_width": self.cond_width,
            "grid": self.grid,
            "hidden": self.hidden,
            "scene_size": self.scene_size,
            "film": self.film,
        }

    def forward(self, features: torch.Tensor, cond_tokens: torch.Tensor):
        """Features (B, g², C) and condition tokens (B, W) → (heat logits (B, g²), boxes (B, 4)
        as ``(cx, cy, w, h)`` fractions of the padded square)."""
        b, n = features.shape[:2]
        if features.ndim != 3 or features.shape[-1] != self.feature_dim or n != self.grid**2:
            raise ValueError(
                f"features must have shape (B, {self.grid**2}, {self.feature_dim}), "
                f"got {tuple(features.shape)}"
            )
        if cond_tokens.shape != (b, self.cond_width):
            raise ValueError(
                f"condition tokens must have shape ({b}, {self.cond_width}), "
                f"got {tuple(cond_tokens.shape)}"
            )
        maps = features.float().transpose(1, 2).reshape(b, self.feature_dim, self.grid, self.grid)
        cond = self.cond_norm(cond_tokens.float())
        h = self.inp(maps)
        if self.film:
            h = h * (1 + self.gamma(cond))[:, :, None, None]
        h = self.body(h + self.cond(cond)[:, :, None, None])
        logits = self.heat(h).flatten(1)  # (B, g²)
        p = logits.softmax(1)
        pooled = torch.einsum("bn,bdn->bd", p, h.flatten(2))
        return logits, torch.cat([p @ self.centres, torch.sigmoid(self.size(pooled))], 1)

    def heat_map(self, features: torch.Tensor, cond_tokens: torch.Tensor) -> torch.Tensor:
        """Where the locator looks: its softmax over the cells, (B, g, g) summing to 1."""
        logits, _ = self.forward(features, cond_tokens)
        return logits.softmax(1).view(-1, self.grid, self.grid)

    def loss(
        self,
        features: torch.Tensor,
        cond_tokens: torch.Tensor,
        boxes: torch.Tensor,
        overlap: float = 2.0,
    ):
        """Cross-entropy of the true centre's cell + 10 × L1 of the box (``(cx, cy, w, h)``)
        + ``overlap`` × (1 − generalised IoU), mean over the batch (``overlap=0``: the loss
        of the locators fitted before the term)."""
        logits, pred = self.forward(features, cond_tokens)
        col = (boxes[:, 0] * self.grid).long().clamp(0, self.grid - 1)
        row = (boxes[:, 1] * self.grid).long().clamp(0, self.grid - 1)
        loss = F.cross_entropy(logits, row * self.grid + col) + 10 * F.l1_loss(pred, boxes)
        if overlap:
            loss = loss + overlap * (1 - generalised_iou(pred, boxes)).mean()
        return loss


def generalised_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of boxes ``(cx, cy, w, h)`` row by row, (B,) in (−1, 1]: the IoU less
    the share of the smallest box enclosing both that neither covers, so that disjoint boxes
    still pull together (Rezatofighi et al., 2019)."""
    a0, a1 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b0, b1 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.minimum(a1, b1) - torch.maximum(a0, b0)).clamp(min=0).prod(1)
    union = a[:, 2:].prod(1) + b[:, 2:].prod(1) - inter
    hull = (torch.maximum(a1, b1) - torch.minimum(a0, b0)).prod(1)
    eps = torch.finfo(a.dtype).tiny
    return inter / union.clamp(min=eps) - (hull - union) / hull.clamp(min=eps)


def grid_of(features: torch.Tensor) -> int:
    """Side of the square grid of (B, N, C) features; ValueError when N is not a square."""
    g = math.isqrt(features.shape[1])
    if g * g != features.shape[1]:
        raise ValueError(f"{features.shape[1]} features do not make a square grid")
    return g
