"""Writers of every published checkpoint layout, from a training-layout state dict.

They reproduce the published formats (lrvs-f.md §3) on random weights, so the loaders are
tested without network access.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_training_pth(sd, path: Path) -> Path:
    torch.save({k: v.clone() for k, v in sd.items()}, path)
    return path


def _hf_config(sd, **extra):
    width, _, patch, _ = sd["conv1.weight"].shape
    grid = round((sd["positional_embedding"].shape[0] - 1) ** 0.5)
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    return {
        "model_type": "condvit",
        "input_resolution": grid * patch,
        "patch_size": patch,
        "width": width,
        "layers": layers,
        "heads": width // 64,
        "output_dim": sd["proj"].shape[1],
        **extra,
    }


def write_hf_cat(sd, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n_cat = sd["c_embedding.weight"].shape[0]
    (folder / "config.json").write_text(json.dumps(_hf_config(sd, n_categories=n_cat)))
    save_file(
        {f"model.{k}": v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors")
    )
    return folder


def write_hf_txt(sd, folder: Path) -> Path:
    """Sharded: shard 1 holds the sentence encoder's ``lm.*`` weights, shard 2 the CondViT."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = _hf_config(sd, lm_backbone="sentence-transformers/sentence-t5-xl", lm_revision="abc")
    (folder / "config.json").write_text(json.dumps(cfg))
    vis = {}
    for k, v in sd.items():
        if k == "proj":
            vis["condvit.proj.weight"] = v.t().contiguous()
        else:
            vis[f"condvit.{k}"] = v.contiguous()
    lm = {"lm.encoder.weight": torch.randn(8, 8), "lm.shared.weight": torch.randn(4, 8)}
    shards = {"model-00001-of-00002.safetensors": lm, "model-00002-of-00002.safetensors": vis}
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name))
        weight_map.update({k: name for k in tensors})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def write_clip_full(sd, path: Path) -> Path:
    """A full CLIP state dict: ``visual.*`` plus text-tower keys and CLIP's own logit scale."""
    full = {f"visual.{k}": v.clone() for k, v in sd.items() if not k.startswith("c_")}
    full.pop("visual.logit_scale", None)
    full["token_embedding.weight"] = torch.randn(10, 8)
    full["text_projection"] = torch.randn(8, 8)
    full["logit_scale"] = torch.tensor(2.659)
    torch.save(full, path)
    return path
