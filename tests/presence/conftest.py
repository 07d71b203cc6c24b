"""A small synthetic dataset (its outfits known) and a tiny untrained CondViT of the ten LRVS-F
categories, shared by the presence and score-floor tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import referred
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.model.config import ModelConfig

SYNTH = SynthConfig(products=90, distractors=4, size=32, seed=3)


@pytest.fixture(scope="package")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presence") / "ds"
    write_synthetic_dataset(root, SYNTH)
    return root


@pytest.fixture(scope="package")
def model() -> referred.CondViT:
    torch.manual_seed(0)
    config = ModelConfig(
        input_resolution=32, patch_size=8, width=32, layers=1, heads=2, output_dim=16,
        categories=tuple(referred.LRVSF_CATEGORIES),
    )  # fmt: skip
    return referred.CondViT(config).eval()
