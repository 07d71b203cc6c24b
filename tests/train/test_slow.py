"""Slow checks (minutes): the conditioning is learned; two DDP processes train like one."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import referred
from referred.data import open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.train import TrainConfig, evaluate_split, train

pytestmark = pytest.mark.slow

#: A small hybrid ViT at the synthetic data's 64 px (4×4 tokens after a 4-conv stem).
SMALL_64 = {
    "input_resolution": 64,
    "patch_size": 16,
    "width": 64,
    "layers": 2,
    "heads": 2,
    "output_dim": 32,
    "conv_stem": [16, 32, 64, 64],
}


def test_a_short_run_learns_the_conditioning(tmp_path):
    """Measured: conditional R@1 (+0) 12% vs 1%, Cat@1 100% vs 7% (about 100 s on 2 vCPUs)."""
    data = tmp_path / "data"
    write_synthetic_dataset(data, SynthConfig(products=1000, distractors=100, seed=1))
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(SMALL_64))
    base = TrainConfig(
        data=str(data),
        out="",
        model=str(arch),
        epochs=20,
        batch_size=32,
        lr=2e-3,
        workers=0,
        threads=1,
        device="cpu",
    )
    scores = {}
    for cond in ("category", "none"):
        result = train(replace(base, conditioning=cond, out=str(tmp_path / cond)), progress=False)
        model = referred.load_model(result.best)
        scores[cond] = evaluate_split(model, open_dataset(data), "test", distractor_counts=(0,))[
            "sweep"
        ][0]
    cat, none = scores["category"], scores["none"]
    assert cat["R@1"] >= none["R@1"] + 0.05, scores
    assert cat["R@10"] >= 2 * none["R@10"] + 0.2, scores
    assert cat["Cat@1"] >= 0.8 > 0.5 >= none["Cat@1"], scores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, config: TrainConfig) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    train(config, progress=False)


def test_two_ddp_processes_train_like_one(synth_data, tmp_path):
    """Global batch 8 as 2 × 4 (gloo, CPU) gives the weights of 1 × 8, to float tolerance,
    through the head-only epoch (DDP rebuilt when the backbone unfreezes)."""
    from referred.model import create_model
    from referred.model.config import make_config
    from tests.train.conftest import MICRO_ARCH

    plain = tmp_path / "plain"  # an unconditional checkpoint, as CLIP weights would be
    create_model(make_config(MICRO_ARCH, "none"), seed=1).save_pretrained(plain)
    cfg = TrainConfig(
        data=str(synth_data),
        out=str(tmp_path / "one"),
        model=str(plain),
        epochs=2,
        batch_size=8,
        lr=2e-3,
        workers=0,
        threads=1,
        device="cpu",
    )
    assert cfg.resolved().head_only_epochs == 1
    one = train(cfg, progress=False)
    two = replace(cfg, out=str(tmp_path / "two"))
    mp.spawn(_ddp_worker, args=(_free_port(), two), nprocs=2, join=True)
    a = load_file(str(Path(one.last) / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "last" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)
    history = json.loads((tmp_path / "two" / "last" / "config.json").read_text())["trained"]
    assert history["world_size"] == 2
