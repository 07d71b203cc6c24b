"""Shared data for the index tests: small, seeded, structured like real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.index.synth import catalog, structured

N, DIM = 4000, 32


@pytest.fixture(scope="session")
def vectors() -> np.ndarray:
    return structured(N, DIM, seed=0)


@pytest.fixture(scope="session")
def queries() -> np.ndarray:
    return structured(50, DIM, seed=1)


@pytest.fixture(scope="session")
def products() -> tuple[list[str], list[dict]]:
    return catalog(N)
