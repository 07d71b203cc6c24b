"""Learning-rate schedule and parameter phases: pure functions of the step and the epoch.

The schedule has no state besides the global step, so a resumed run recomputes it exactly:
linear warm-up over ``warmup`` steps, then a cosine decay to ``min_lr`` at ``total`` steps.

Phases (lrvs-f.md §4): during the first ``head_only_epochs`` epochs only the output projection,
the condition embeddings (``c_embedding``, ``c_pos_embedding``, ``c_proj``) and ``logit_scale``
train; then every parameter does.
"""

from __future__ import annotations

import math

from torch import nn

#: Parameters trained in the head-only phase (by name prefix).
HEAD_PARAMS = ("proj", "c_embedding", "c_pos_embedding", "c_proj", "logit_scale")


def learning_rate(
    step: int,
    *,
    base_lr: float,
    warmup: int,
    total: int,
    min_lr: float = 0.0,
    spent: float = 0.0,
) -> float:
    """The learning rate of optimiser step ``step`` (0-based).

    Linear warm-up ``base_lr·(step+1)/warmup`` for ``step < warmup``, then half a cosine from
    ``base_lr`` down to ``min_lr`` reached at ``step = total``. With a time budget, ``spent``
    (the share of it used, 0..1) moves along the same schedule — warm-up over the same share
    of the budget as of the steps — and whichever of steps and time is further along decides.
    """
    w = warmup / total if total > 0 else 0.0  # the warm-up's share of the schedule
    if step < warmup and spent < w:
        return base_lr * max((step + 1) / warmup, spent / w)
    span = max(1, total - warmup)
    by_time = (spent - w) / (1.0 - w) if w < 1.0 else 1.0
    progress = min(1.0, max((step - warmup) / span, by_time if spent > 0 else 0.0))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def is_head_param(name: str) -> bool:
    """Whether parameter ``name`` trains in the head-only phase."""
    return name.split(".")[0] in HEAD_PARAMS


def set_trainable(model: nn.Module, head_only: bool, frozen: tuple[str, ...] = ()) -> int:
    """Freeze everything but the head parameters (``head_only``) or unfreeze all; parameters
    whose names start with one of ``frozen`` stay frozen either way (a hybrid's trunk at
    ``trunk_lr_scale`` 0: no gradient, so autograd keeps none of its activations).

    Returns the number of trainable parameters.
    """
    n = 0
    for name, param in model.named_parameters():
        trainable = (not head_only or is_head_param(name)) and not name.startswith(frozen)
        param.requires_grad_(trainable)
        n += param.numel() if trainable else 0
    return n


def param_groups(
    model: nn.Module, weight_decay: float, trunk_lr_scale: float | None = None
) -> list[dict]:
    """AdamW groups: decay on matrices and conv kernels; none on biases, norms, embeddings,
    the class/positional/condition tokens and ``logit_scale`` (CLIP's practice). A hybrid's
    pretrained trunk (``trunk.*``) gets its own groups with ``lr_scale = trunk_lr_scale``
    (the loop multiplies the scheduled rate by each group's ``lr_scale``)."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        is_table = name.startswith(("c_embedding", "class_embedding", "positional_embedding"))
        no_decay = param.ndim < 2 or is_table or name.startswith("c_pos_embedding")
        in_trunk = trunk_lr_scale is not None and name.startswith("trunk.")
        groups.setdefault((in_trunk, no_decay), []).append(param)
    out = []
    for (in_trunk, no_decay), params in sorted(groups.items()):
        scale = float(trunk_lr_scale) if in_trunk and trunk_lr_scale is not None else 1.0
        out.append(
            {"params": params, "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
        )
    return out
