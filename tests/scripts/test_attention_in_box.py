"""The box-coverage grid of scripts/attention_in_box.py on hand-computed cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from attention_in_box import cell_coverage


def test_a_box_on_cell_edges_covers_whole_cells():
    cover = cell_coverage((0, 0, 50, 25), 100, 100, 4)  # cells of 25 px
    want = np.zeros((4, 4))
    want[0, :2] = 1.0
    assert np.allclose(cover, want)


def test_partial_cells_and_padding():
    cover = cell_coverage((10, 0, 60, 50), 100, 100, 2)  # cells of 50 px
    assert np.allclose(cover, [[0.8, 0.2], [0.0, 0.0]])
    wide = cell_coverage((0, 0, 100, 50), 100, 50, 2)  # padded to 100 x 100: rows 25..75
    assert np.allclose(wide, [[0.5, 0.5], [0.5, 0.5]])
    assert np.isclose(wide.sum() / wide.size, 0.5)  # the box is half the padded square
