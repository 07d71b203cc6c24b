"""The zooming overlay on hand-computed cases: the locator's heat inside its predicted box."""

from __future__ import annotations

import math

import pytest
import torch

from referred.zoom.overlay import box_cover, located_map


def test_box_cover_counts_the_share_of_each_cell():
    cover = box_cover(torch.tensor([[0.25, 0.5, 0.5, 0.5]]), 4)  # x 0..0.5, y 0.25..0.75
    want = torch.zeros(4, 4, dtype=torch.float64)
    want[1:3, :2] = 1.0
    assert torch.allclose(cover[0], want)
    half = box_cover(torch.tensor([[0.5, 0.125, 1.0, 0.125]]), 4)  # y 0.0625..0.1875
    assert torch.allclose(half[0, 0], torch.full((4,), 0.5, dtype=torch.float64))
    assert float(half[0, 1:].sum()) == 0.0


def test_the_heat_is_kept_inside_the_box_and_renormalised():
    # 2 x 2 heat map: probabilities 0.5, 0.25 (top row), 0.25, 0 (bottom row)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25, 1e-30]]))
    box = torch.tensor([[0.5, 0.25, 1.0, 0.5]])  # the whole top row
    out = located_map(logits, box, scale=2)
    assert out.shape == (1, 4, 4) and float(out.sum()) == pytest.approx(1.0)
    assert float(out[0, 2:].sum()) == pytest.approx(0.0, abs=1e-6)
    assert float(out[0, :2, :2].sum()) == pytest.approx(2 / 3)  # 0.5 / (0.5 + 0.25)
    assert float(out[0, :2, 2:].sum()) == pytest.approx(1 / 3)
    # a thin box, half of a fine row: only the heat it covers, by the share it covers
    thin = located_map(logits, torch.tensor([[0.25, 0.125, 0.5, 0.125]]), scale=2)
    assert float(thin[0, 0, :2].sum()) == pytest.approx(1.0)


def test_a_box_outside_the_heat_leaves_the_heat_map_and_bad_shapes_are_refused():
    logits = torch.tensor([[0.0, -math.inf, -math.inf, -math.inf]])  # all heat top-left
    out = located_map(logits, torch.tensor([[0.75, 0.75, 0.2, 0.2]]), scale=3)
    assert out.shape == (1, 6, 6) and float(out[0, :3, :3].sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        located_map(logits, torch.zeros(1, 4), scale=0)
    with pytest.raises(ValueError, match=r"expected logits \(B, g²\) and boxes \(B, 4\)"):
        located_map(torch.zeros(1, 5), torch.zeros(1, 4))
