"""scripts/bench_exclusion.py's measurement on a hand-made ranking."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from bench_exclusion import colour_of, measure


def test_colour_of_reads_the_first_colour_family():
    assert colour_of("Brown stripes backpack - Synthetic Fashion") == "brown"
    assert colour_of("Striped scarf") is None


def test_measure_drops_the_crowding_colour_and_keeps_the_wanted_product():
    """12 products; query 0 wants product 0 (red) and sees the 11 others in order, the black
    ones first: 6 of its top 10 are black. Excluded, the top 10 has none."""
    titles = ["Red tote"] + ["Black tote"] * 6 + ["Blue tote"] * 5
    n = len(titles)
    gallery = np.eye(n, dtype=np.float32)
    query = np.zeros((1, n), np.float32)
    query[0, 1:7] = np.linspace(1.0, 0.9, 6)  # black ones first
    query[0, 0] = 0.8
    query[0, 7:] = np.linspace(0.7, 0.6, 5)
    m = measure(query, gallery, titles)
    assert m["queries"] == 1
    assert m["share_before"] == pytest.approx(0.6) and m["share_after"] == 0.0
    assert m["share_drop"] == 1.0 and m["R@10_before"] == 1.0 and m["R@10_after"] == 1.0
