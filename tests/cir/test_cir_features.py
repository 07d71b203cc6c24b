"""The vector cache: what was embedded survives an interruption, another key starts over."""

from __future__ import annotations

import numpy as np
import pytest

from referred.cir.features import VectorCache


def test_cached_vectors_are_embedded_once_and_survive_a_failure(tmp_path):
    calls: list[list[str]] = []

    def embed(names):
        calls.append(list(names))
        if "boom" in names:
            raise RuntimeError("interrupted")
        return np.array([[len(n), 1.0] for n in names], np.float32)

    cache = VectorCache(tmp_path / "v.npz", key="model-a")
    with pytest.raises(RuntimeError):
        cache.fill(["a", "bb", "boom"], embed, batch=2)  # the first batch is kept
    again = VectorCache(tmp_path / "v.npz", key="model-a")
    assert set(again.vectors) == {"a", "bb"}
    calls.clear()
    out = again.fill(["bb", "ccc", "a", "bb"], embed, batch=2)
    assert calls == [["ccc"]]  # only what is missing, each name once
    assert out[:, 0].tolist() == [2, 3, 1, 2]
    assert VectorCache(tmp_path / "v.npz", key="model-b").vectors == {}  # other weights
