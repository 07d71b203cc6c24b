"""Symmetric InfoNCE between conditioned scenes and unconditioned products (pure functions).

Each process holds ``B`` local pairs; with ``W`` processes the negatives are the ``N = W·B``
gathered embeddings. Process ``r`` scores its own rows against all of them::

    logits_q = s · q_local @ t_all.T       # (B, N): local queries vs all products
    logits_t = s · t_local @ q_all.T       # (B, N): local products vs all queries
    loss_r   = (CE(logits_q, r·B + i) + CE(logits_t, r·B + i)) / 2

with ``s = exp(clamp(logit_scale, 0, ln 100))``. The mean of ``loss_r`` over processes equals
the full-batch loss (``W = 1``: the usual CLIP loss), and its gradient is the full-batch
gradient once DDP averages the gradients and the gather's backward sums them (see
:mod:`referred.train.distributed`). Scoring local rows only costs ``B × N`` instead of ``N²``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from referred.train.config import LOGIT_SCALE_MAX


def logit_temperature(logit_scale: torch.Tensor) -> torch.Tensor:
    """``exp(logit_scale)`` with ``logit_scale`` clamped to ``[0, ln 100]`` (a scalar)."""
    return logit_scale.clamp(0.0, LOGIT_SCALE_MAX).exp()


def info_nce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    logit_scale: torch.Tensor,
    all_queries: torch.Tensor | None = None,
    all_targets: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised embeddings; a scalar.

    Args:
        queries: ``(B, D)`` local conditioned-scene embeddings (L2-normalised, float32).
        targets: ``(B, D)`` local product embeddings; pair ``i`` is ``(queries[i], targets[i])``.
        logit_scale: scalar log-temperature (clamped to ``[0, ln 100]`` here).
        all_queries, all_targets: ``(N, D)`` gathered embeddings of every process (``None``:
            the local ones, i.e. one process).
        offset: row of this process's first pair in the gathered tensors (``rank · B``).
    """
    if queries.shape != targets.shape or queries.ndim != 2:
        raise ValueError(
            f"queries and targets must both be (B, D), got {tuple(queries.shape)} and "
            f"{tuple(targets.shape)}"
        )
    all_q = queries if all_queries is None else all_queries
    all_t = targets if all_targets is None else all_targets
    scale = logit_temperature(logit_scale)
    labels = torch.arange(queries.shape[0], device=queries.device) + offset  # (B,)
    logits_q = scale * queries @ all_t.T  # (B, N)
    logits_t = scale * targets @ all_q.T  # (B, N)
    return (F.cross_entropy(logits_q, labels) + F.cross_entropy(logits_t, labels)) / 2


def clamp_logit_scale_(logit_scale: torch.nn.Parameter) -> None:
    """Keep the learned log-temperature in ``[0, ln 100]`` (call after each optimiser step)."""
    with torch.no_grad():
        logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)
