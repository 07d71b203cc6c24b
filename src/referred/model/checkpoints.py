"""Reading, converting and writing CondViT weights in every published layout.

Layouts (``lrvs-f.md`` §3), all mapped losslessly onto this package's parameter names, which are
the training code's:

* ``training``: the training code's ``.pth`` state dict, keys at top level;
* ``hf-cat``: ``Slep/CondViT-B16-cat`` (keys prefixed ``model.``);
* ``hf-txt``: ``Slep/CondViT-B16-txt`` (``condvit.`` prefix, ``proj.weight`` = transposed ``proj``,
  sharded safetensors; its ``lm.*`` sentence-encoder weights are never read here);
* ``clip``: OpenAI CLIP / open_clip weights (``visual.*`` keys, or the visual module alone);
* ``referred``: ``save_pretrained`` output, ``config.json`` + ``model.safetensors``.

Nothing is unpickled beyond tensors: ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from referred.categories import LRVSF_CATEGORIES
from referred.model.config import RELEASED_TEXT_ENCODER, ModelConfig
from referred.model.efficientnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OUTPUT_STRIDES,
    blocks_for_stride,
    channels_at_stride,
)
from referred.preprocess import PreprocessConfig

FORMAT = "referred.condvit"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
SHARD_INDEX_NAME = "model.safetensors.index.json"

#: Parameters a CondViT may lack in a foreign checkpoint; they keep their fresh initialisation.
NEW_CONDITIONING_KEYS = frozenset(
    {"c_embedding.weight", "c_pos_embedding", "c_proj.weight", "c_proj.bias", "logit_scale"}
)

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A weights file or folder that cannot be read or does not fit a CondViT."""


# -- reading files ---------------------------------------------------------------------------
def read_safetensors(path: Path, keep: Callable[[str], bool] = lambda k: True) -> StateDict:
    """Tensors of one safetensors file whose key passes ``keep`` (others are never read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys() if keep(k)}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_sharded(index_path: Path, keep: Callable[[str], bool] = lambda k: True) -> StateDict:
    """A sharded safetensors checkpoint; only shards holding wanted keys are opened."""
    try:
        weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{index_path}: not a safetensors shard index ({exc})") from exc
    shards = sorted({f for k, f in weight_map.items() if keep(k)})
    state: StateDict = {}
    for shard in shards:
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path} names the shard {shard}, which is missing")
        state.update(read_safetensors(shard_path, keep))
    return state


def read_torch(path: Path) -> StateDict:
    """A ``.pth``/``.pt``/``.bin`` state dict, loaded with ``weights_only=True``.

    TorchScript archives (OpenAI's original CLIP ``.pt`` files) are read with
    ``torch.jit.load``, which restores tensors and TorchScript code, never Python objects.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(re.search(r"(^|/)code/", n) for n in z.namelist()):
                scripted = torch.jit.load(str(path), map_location="cpu")
                return {k: v.detach() for k, v in scripted.state_dict().items()}
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable torch state dict ({type(exc).__name__}: {exc})"
        ) from exc
    for key in ("state_dict", "model", "module"):  # common wrappers around a state dict
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def _keep_visual(key: str) -> bool:
    return not key.startswith("lm.")


def read_weights(path: Path) -> tuple[StateDict, dict[str, Any] | None]:
    """Any supported file or folder → (raw state dict, its ``config.json`` or None)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint file or folder: {path}")
    config = None
    if path.is_dir():
        cfg_path = path / "config.json"
        if cfg_path.is_file():
            try:
                config = json.loads(cfg_path.read_text())
            except ValueError as exc:
                raise CheckpointError(f"{cfg_path}: invalid JSON ({exc})") from exc
        if (path / SHARD_INDEX_NAME).is_file():
            return read_sharded(path / SHARD_INDEX_NAME, _keep_visual), config
        for name in (WEIGHTS_NAME, "pytorch_model.bin", "model.pth", "model.pt"):
            if (path / name).is_file():
                return _read_file(path / name), config
        raise CheckpointError(
            f"{path}: no weights found; expected {WEIGHTS_NAME}, {SHARD_INDEX_NAME}, "
            "pytorch_model.bin or model.pth"
        )
    return _read_file(path), config


def _read_file(path: Path) -> StateDict:
    if path.suffix == ".safetensors":
        return read_safetensors(path, _keep_visual)
    if path.name.endswith(".index.json"):
        return read_sharded(path, _keep_visual)
    return read_torch(path)


# -- layouts ---------------------------------------------------------------------------------
def detect_layout(state: StateDict) -> str:
    """Name the layout of a raw state dict (``training``, ``hf-cat``, ``hf-txt``, ``clip``)."""
    keys = set(state)
    if any(k.startswith("condvit.") for k in keys):
        return "hf-txt"
    if "model.conv1.weight" in keys:
        return "hf-cat"
    if "visual.conv1.weight" in keys:
        return "clip"
    if "module.conv1.weight" in keys:
        return "ddp"
    if "conv1.weight" in keys:
        return "training"
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(
        "unrecognised checkpoint layout: no conv1.weight under any known prefix "
        f"(model., condvit., visual., module.); first keys: {sample}"
    )


def to_training_layout(state: StateDict) -> tuple[StateDict, str]:
    """Any layout → the training code's key names and shapes; returns (state, layout)."""
    layout = detect_layout(state)
    prefix = {"hf-txt": "condvit.", "hf-cat": "model.", "clip": "visual.", "ddp": "module."}
    out = dict(state)
    if layout in prefix:
        p = prefix[layout]
        out = {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
    if "proj.weight" in out and "proj" not in out:  # Linear weight (out, width) → (width, out)
        out["proj"] = out.pop("proj.weight").t().contiguous()
    return out, layout


def _layer_count(state: StateDict) -> int:
    idx = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
    if not idx:
        raise CheckpointError("checkpoint has no transformer.resblocks.* weights")
    return max(idx) + 1


def infer_config(
    state: StateDict,
    hub_config: dict[str, Any] | None = None,
    categories: Iterable[str] | None = None,
) -> ModelConfig:
    """Read the architecture off the tensor shapes (training layout keys).

    Heads follow CLIP's rule ``width / 64`` unless a Hugging Face ``config.json`` says otherwise.
    A 10-row category table is LRVS-F's (published order); other sizes need ``categories``.
    """
    try:
        conv = state["conv1.weight"]
        pos = state["positional_embedding"]
        proj = state["proj"]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks the key {exc.args[0]!r} of a CLIP ViT") from exc
    stem = _stem_channels(state)
    trunk, trunk_stride = _trunk(state)
    width, patch = conv.shape[0], conv.shape[-1] * 2 ** len(stem)
    preprocess = PreprocessConfig()
    trunk_patch, pyramid = 1, False
    if trunk is not None:  # a hybrid: tokens are the trunk's map, normalised as it was trained
        trunk_patch = conv.shape[-1]  # conv1 groups trunk_patch² cells of the map per token
        trunk_stride, pyramid = _trunk_levels(trunk_stride, trunk_patch, conv.shape[1])
        patch = trunk_stride * trunk_patch
        preprocess = PreprocessConfig(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    grid = round((pos.shape[0] - 1) ** 0.5)
    if grid * grid + 1 != pos.shape[0]:
        raise CheckpointError(f"positional_embedding has {pos.shape[0]} rows, not 1 + a square")
    hidden = state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    hub_config = hub_config or {}
    cats = _categories(state, categories)
    cond_dim = None
    if "c_proj.weight" in state:
        cond_dim = state["c_proj.weight"].shape[1]
    elif "c_pos_embedding" in state and not cats:
        cond_dim = width  # the released text model: the sentence vector is the token
    return ModelConfig(
        input_resolution=grid * patch,
        patch_size=patch,
        width=width,
        layers=_layer_count(state),
        heads=int(hub_config.get("heads", width // 64)),
        output_dim=proj.shape[1],
        mlp_ratio=hidden / width,
        conv_stem=stem,
        trunk=trunk,
        trunk_stride=trunk_stride,
        trunk_patch=trunk_patch,
        trunk_pyramid=pyramid,
        categories=cats,
        cond_dim=cond_dim,
        text_encoder=hub_config.get("lm_backbone", RELEASED_TEXT_ENCODER) if cond_dim else None,
        name=str(hub_config.get("_name_or_path", "custom")),
        preprocess=preprocess,
    )


def _trunk(state: StateDict) -> tuple[str | None, int]:
    """(trunk name, stride) of a hybrid's weights, read off its ``trunk._blocks.N`` count;
    (None, 16) without a trunk. Its BatchNorm mode is not in the weights: frozen."""
    if "trunk._conv_stem.weight" not in state:
        return None, 16
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"trunk\._blocks\.(\d+)\.", k))}
    by_count = {blocks_for_stride(s): s for s in OUTPUT_STRIDES}
    if len(blocks) not in by_count:
        raise CheckpointError(
            f"checkpoint has an EfficientNet-Lite0 trunk with {len(blocks)} blocks; a trunk "
            f"stops after {sorted(by_count)} blocks (strides {OUTPUT_STRIDES})"
        )
    return "efficientnet-lite0", by_count[len(blocks)]


def _trunk_levels(deepest: int, trunk_patch: int, conv_in: int) -> tuple[int, bool]:
    """(trunk_stride, trunk_pyramid) of a hybrid whose trunk stops at stride ``deepest``, read off
    ``conv1``'s input channels: the map's own (a plain hybrid), or a finer map's plus the deepest
    one's (a pyramid, ``trunk_stride × trunk_patch = deepest``)."""
    if conv_in == channels_at_stride(deepest):
        return deepest, False
    fine = deepest // trunk_patch
    if (
        trunk_patch > 1
        and fine in OUTPUT_STRIDES
        and conv_in == channels_at_stride(fine) + channels_at_stride(deepest)
    ):
        return fine, True
    raise CheckpointError(
        f"conv1 takes {conv_in} channels, which fits neither the trunk's stride-{deepest} map "
        f"({channels_at_stride(deepest)}) nor a pyramid of it and a finer map"
    )


def _stem_channels(state: StateDict) -> tuple[int, ...]:
    convs = sorted(
        (int(m.group(1)), v.shape[0])
        for k, v in state.items()
        if (m := re.match(r"stem\.layers\.(\d+)\.weight$", k)) and v.ndim == 4
    )
    return tuple(c for _, c in convs)


def _categories(state: StateDict, categories: Iterable[str] | None) -> tuple[str, ...]:
    if "c_embedding.weight" not in state:
        return tuple(categories) if categories is not None else ()
    n = state["c_embedding.weight"].shape[0]
    if categories is not None:
        cats = tuple(categories)
        if len(cats) != n:
            raise CheckpointError(f"checkpoint has {n} category embeddings but {len(cats)} names")
        return cats
    if n == len(LRVSF_CATEGORIES):
        return LRVSF_CATEGORIES
    raise CheckpointError(
        f"checkpoint has {n} category embeddings; pass categories=[...] with {n} names"
    )


def load_state(
    model: torch.nn.Module,
    state: StateDict,
    source: str,
    allowed_missing: frozenset[str] = frozenset(),
) -> None:
    """Copy ``state`` into ``model``; every missing/unexpected key or shape is named.

    Keys in ``allowed_missing`` may be absent (they keep the model's initialisation).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - allowed_missing)
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)


# -- the project's own format ----------------------------------------------------------------
def save_pretrained(
    model: Any, directory: str | os.PathLike, extra: dict[str, Any] | None = None
) -> None:
    """Write ``config.json`` + ``model.safetensors``; files are replaced atomically."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    config.update(extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp_weights = d / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp_weights), metadata={"format": FORMAT})
    tmp_config = d / ".config.json.tmp"
    tmp_config.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp_weights, d / WEIGHTS_NAME)
    os.replace(tmp_config, d / "config.json")
    known = getattr(model, "known_texts", None)
    if known and model.config.text_encoder:
        from referred.model.text import save_text_vectors

        save_text_vectors(d, model.config.text_encoder, known)
    head = getattr(model, "cir_head", None)
    if head is not None:  # its Combiner travels with it (referred.cir.io)
        from referred.cir.io import save_head

        save_head(d, head)
    presence = getattr(model, "presence_head", None)
    if presence is not None:  # and its presence head (referred.presence.io)
        from referred.presence.io import save_head as save_presence_head

        save_presence_head(d, presence)
    floor = getattr(model, "score_floor", None)
    if floor is not None:  # the score under which results are weak (referred.presence.floor)
        from referred.presence.floor import save_floor

        record = getattr(model, "score_floor_record", None) or {}
        save_floor(d, {**record, "floor": floor})  # how it was measured, when known
    locator = getattr(model, "locator", None)
    if locator is not None:  # and its locator (referred.zoom.io)
        from referred.zoom.io import save_locator

        save_locator(d, locator, model.zoom_views)


def config_from_saved(config: dict[str, Any], source: str) -> ModelConfig:
    """The :class:`ModelConfig` of a ``save_pretrained`` folder's ``config.json``."""
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: format_version {version!r} is not supported (this version reads "
            f"{FORMAT_VERSION}); upgrade referred"
        )
    model_cfg = dict(config["model"])
    if isinstance(model_cfg.get("preprocess"), dict):
        model_cfg["preprocess"] = PreprocessConfig.from_dict(model_cfg["preprocess"])
    return ModelConfig.from_dict(model_cfg)
