"""Training-free compositions of an image vector and a text vector, and the text bridge.

CLIP-based baselines add the image and text embeddings of one joint space. A CondViT's
catalog space has no text side, so the text is first *bridged* into it without any fitted
parameter (:class:`TextBridge`): the mean catalog embedding of the targets of the ``k``
training requests worded most like it ("in red" → the average of red targets). Then, for unit
``q`` (the query item) and ``t`` (the bridged text), all (B, D) → (B, D) unit rows:

* ``image``: q;  ``text``: t;  ``sum``: normalize(q + t);
* ``weighted``: normalize((1 - w) q + w t);
* ``slerp``: the point at fraction ``s`` of the great-circle arc from q to t.

``w`` and ``s`` are free choices (the benchmark picks them on the validation split).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

#: Baseline names in report order.
BASELINES: tuple[str, ...] = ("image", "text", "sum", "weighted", "slerp")


def slerp(q: torch.Tensor, t: torch.Tensor, s: float) -> torch.Tensor:
    """Spherical interpolation of unit rows: ``s = 0`` gives q, ``s = 1`` gives t (B, D)."""
    q, t = F.normalize(q, dim=-1), F.normalize(t, dim=-1)
    cos = (q * t).sum(-1, keepdim=True).clamp(-1.0, 1.0)  # (B, 1)
    theta = torch.arccos(cos)
    sin = torch.sin(theta)
    near = sin.abs() < 1e-6  # parallel rows: the arc is a point, interpolate linearly
    safe = torch.where(near, torch.ones_like(sin), sin)
    a = torch.where(near, 1 - s * torch.ones_like(sin), torch.sin((1 - s) * theta) / safe)
    b = torch.where(near, s * torch.ones_like(sin), torch.sin(s * theta) / safe)
    return F.normalize(a * q + b * t, dim=-1)


def compose(name: str, q: torch.Tensor, t: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """The baseline ``name`` of :data:`BASELINES`; ``weight`` is w (weighted) or s (slerp)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "image": lambda: F.normalize(q, dim=-1),
        "text": lambda: F.normalize(t, dim=-1),
        "sum": lambda: F.normalize(q + t, dim=-1),
        "weighted": lambda: F.normalize((1 - weight) * q + weight * t, dim=-1),
        "slerp": lambda: slerp(q, t, weight),
    }
    if name not in fns:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    return fns[name]()


class TextBridge:
    """Texts → catalog space, by the targets of the most similar known requests.

    ``texts`` (N, T) are sentence embeddings of requests whose wanted items have the catalog
    embeddings ``targets`` (N, D). A text's bridge is the normalised mean of the targets of
    its ``k`` nearest requests (cosine). No parameter is fitted.
    """

    def __init__(self, texts: torch.Tensor, targets: torch.Tensor, k: int = 32) -> None:
        if texts.ndim != 2 or targets.ndim != 2 or len(texts) != len(targets) or not len(texts):
            raise ValueError(
                f"texts (N, T) and targets (N, D) must be non-empty with the same N, got "
                f"{tuple(texts.shape)} and {tuple(targets.shape)}"
            )
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.texts = F.normalize(texts.float(), dim=-1)
        self.targets = targets.float()
        self.k = min(int(k), len(texts))

    def __call__(self, texts: torch.Tensor) -> torch.Tensor:
        """(B, T) → (B, D) unit rows."""
        sims = F.normalize(texts.float(), dim=-1) @ self.texts.T  # (B, N)
        idx = sims.topk(self.k, dim=-1).indices  # (B, k)
        return F.normalize(self.targets[idx].mean(dim=1), dim=-1)  # (B, k, D) → (B, D)
