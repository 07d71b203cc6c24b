"""Shared fixtures of the training tests: a small synthetic dataset and a micro architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.train import TrainConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"

#: 48 train / 6 valid / 6 test products of 32 px, 16 distractors per split.
TRAIN_SYNTH = SynthConfig(products=60, distractors=16, size=32, seed=5)

#: A CondViT small enough for a training step in milliseconds.
MICRO_ARCH = {
    "input_resolution": 32,
    "patch_size": 8,
    "width": 32,
    "layers": 1,
    "heads": 2,
    "output_dim": 16,
    "conv_stem": [8, 16],
}


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset in the training layout (read-only)."""
    root = tmp_path_factory.mktemp("train-synth") / "ds"
    write_synthetic_dataset(root, TRAIN_SYNTH)
    return root


@pytest.fixture(scope="session")
def micro_arch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "micro.json"
    path.write_text(json.dumps(MICRO_ARCH))
    return path


@pytest.fixture
def micro_config(synth_data: Path, micro_arch: Path, tmp_path: Path) -> TrainConfig:
    """Two fast epochs of the micro model on the synthetic data, in one process."""
    return TrainConfig(
        data=str(synth_data),
        out=str(tmp_path / "run"),
        model=str(micro_arch),
        epochs=2,
        batch_size=8,
        lr=2e-3,
        workers=0,
        device="cpu",
        threads=1,
    )
