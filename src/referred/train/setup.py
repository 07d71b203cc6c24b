"""Turn a :class:`TrainConfig` into things: the device, the precision, the model, the encoder.

Models come from :mod:`referred.model`'s factory: ``create_model`` for an architecture (from
scratch, seeded) or ``load_model`` for weights (CLIP, released CondViTs, a previous run), which
adds freshly initialised condition parameters when the weights lack them — initialised under
the run's seed, so that a run is reproducible.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from referred.model import CondViT, create_model, load_model
from referred.model.config import DEFAULT_TEXT_ENCODER, make_config
from referred.train.config import ModelSpec, TrainConfig
from referred.train.distributed import DistInfo


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` → this process's GPU (``cuda:LOCAL_RANK``) if CUDA works, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} requested but CUDA is not available here; use --device cpu"
            )
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 on GPUs that have it, else fp16 on GPUs, fp32 on the CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            "precision fp16 needs a CUDA device (fp16 matmuls on the CPU are hundreds of times "
            "slower than fp32); use --precision fp32 or bf16"
        )
    if precision == "bf16" and device.type == "cpu":
        from referred.model import cpu

        cpu.require_native_bf16("training with --precision bf16")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """The autocast context of ``precision`` (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def text_encoder_name(spec: ModelSpec, cfg: TrainConfig) -> str:
    """``--text-encoder``, else the one a text checkpoint names, else the default."""
    if cfg.text_encoder:
        return cfg.text_encoder
    config_path = Path(spec.value) / "config.json"
    if spec.kind == "weights" and config_path.is_file():
        try:
            saved = json.loads(config_path.read_text())
        except ValueError:
            saved = {}
        named = saved.get("model", {}).get("text_encoder") or saved.get("lm_backbone")
        if named:
            return str(named)
    return DEFAULT_TEXT_ENCODER


def build_model(
    spec: ModelSpec, cfg: TrainConfig, cond_dim: int | None = None, encoder: str | None = None
) -> CondViT:
    """The model to train, in train mode on the CPU (seeded by ``cfg.seed``).

    ``cond_dim`` and ``encoder`` (the text encoder's output size and name) are needed for
    ``text`` conditioning only.
    """
    if spec.kind == "arch":
        arch = spec.arch if spec.arch is not None else spec.value
        config = make_config(arch, cfg.conditioning, cond_dim=cond_dim, text_encoder=encoder)
        # a hybrid starts from its trunk's ImageNet weights: that is the point of the recipe
        model = create_model(config, seed=cfg.seed, pretrained_trunk=config.trunk is not None)
    else:
        model = _load(spec, cfg, cond_dim, encoder)
    if cfg.init_logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(cfg.init_logit_scale)
    return model.train()


def _load(spec: ModelSpec, cfg: TrainConfig, cond_dim: int | None, encoder: str | None) -> CondViT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # new condition parameters are initialised here
        model = load_model(
            spec.value, conditioning=cfg.conditioning, cond_dim=cond_dim, text_encoder=encoder
        )
    if cfg.conditioning == "text" and model.config.cond_dim != cond_dim:
        raise ValueError(
            f"{spec.value} takes condition vectors of size {model.config.cond_dim}, but the text "
            f"encoder {encoder!r} gives {cond_dim}; pass the matching --text-encoder"
        )
    return model
