"""Zoom's box arithmetic on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from referred.zoom.boxes import (
    MIN_SIDE,
    cell_coverage,
    centre_cell,
    close_up_window,
    from_square,
    iou,
    jitter_box,
    mass_in_box,
    to_square,
)


def test_square_fractions_account_for_the_padding_of_a_wide_image():
    # 200 × 100 image: padded square of side 200, the image starts 50 px down
    assert to_square((50, 0, 150, 100), (200, 100)) == pytest.approx((0.5, 0.5, 0.5, 0.5))
    assert to_square((0, 0, 20, 10), (200, 100)) == pytest.approx((0.05, 0.275, 0.1, 0.05))
    box = (13.0, 7.0, 61.0, 90.0)
    assert from_square(to_square(box, (80, 120)), (80, 120)) == pytest.approx(box)


def test_the_close_up_is_a_square_one_and_a_half_times_the_longer_side():
    # box 40 × 20 centred at (100, 100): side 60, centred
    assert close_up_window((80, 90, 120, 110), (256, 256)) == (70, 70, 130, 130)
    assert close_up_window((80, 90, 120, 110), (256, 256), grow=0.0) == (80, 80, 120, 120)


def test_the_close_up_is_shifted_inside_the_image_and_never_larger_than_it():
    assert close_up_window((0, 0, 20, 20), (256, 256)) == (0, 0, 30, 30)
    assert close_up_window((240, 250, 256, 256), (256, 256)) == (232, 232, 256, 256)
    assert close_up_window((0, 0, 300, 90), (256, 100)) == (100, 0, 200, 100)  # side: 100
    tiny = close_up_window((10, 10, 11, 11), (256, 256))
    assert tiny[2] - tiny[0] == tiny[3] - tiny[1] == MIN_SIDE
    with pytest.raises(ValueError, match="grow must be >= 0"):
        close_up_window((0, 0, 1, 1), (9, 9), grow=-1)


def test_iou_of_hand_made_boxes():
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_the_centre_cell_is_row_major_and_clamped():
    assert centre_cell((0.5, 0.5, 0.1, 0.1), 14) == 7 * 14 + 7
    assert centre_cell((0.99, 0.01, 0.1, 0.1), 14) == 13
    assert centre_cell((1.0, 1.0, 0, 0), 4) == 15


def test_a_box_on_cell_edges_covers_whole_cells():
    cover = cell_coverage((0, 0, 50, 25), (100, 100), 4)  # cells of 25 px
    want = np.zeros((4, 4))
    want[0, :2] = 1.0
    assert np.allclose(cover, want)


def test_partial_cells_and_padding():
    cover = cell_coverage((10, 0, 60, 50), (100, 100), 2)  # cells of 50 px
    assert np.allclose(cover, [[0.8, 0.2], [0.0, 0.0]])
    wide = cell_coverage((0, 0, 100, 50), (100, 50), 2)  # padded to 100 x 100: rows 25..75
    assert np.allclose(wide, [[0.5, 0.5], [0.5, 0.5]])
    assert np.isclose(wide.sum() / wide.size, 0.5)  # the box is half the padded square


def test_the_mass_of_a_map_inside_a_box():
    amap = np.array([[3.0, 1.0], [0.0, 4.0]])  # unnormalised: shares of its total, 8
    assert mass_in_box(amap, (0, 0, 50, 50), (100, 100)) == 3 / 8
    assert np.isclose(mass_in_box(amap, (25, 0, 75, 50), (100, 100)), (1.5 + 0.5) / 8)
    assert np.isclose(mass_in_box(amap, (0, 0, 100, 100), (100, 100)), 1.0)
    # a 100 x 50 image sits in rows 25..75 of its square: its top half covers half of row 0
    assert np.isclose(mass_in_box(amap, (0, 0, 100, 25), (100, 50)), (0.5 * 3 + 0.5 * 1) / 8)


def test_a_jittered_box_stays_within_its_bounds_and_is_fixed_by_its_key():
    box, j = (40.0, 60.0, 80.0, 140.0), 0.2  # 40 × 80, centre (60, 100)
    assert jitter_box(box, 0.0, "u|1") == box
    moved = [jitter_box(box, j, f"scene-{i}.jpg|{i}") for i in range(400)]
    assert jitter_box(box, j, "scene-7.jpg|7") == moved[7]  # the same key, the same box
    assert jitter_box(box, j, "scene-7.jpg|7", seed=1) != moved[7]
    scales = np.array([(x1 - x0) / 40 for x0, _, x1, _ in moved])
    heights = np.array([(y1 - y0) / 80 for _, y0, _, y1 in moved])
    assert np.allclose(scales, heights)  # one factor for both sides: the shape is kept
    assert np.all(np.abs(np.log(scales)) <= j + 1e-9)
    assert np.log(scales).min() < -0.15 and np.log(scales).max() > 0.15  # both ways
    dx = np.array([(x0 + x1) / 2 - 60 for x0, _, x1, _ in moved])
    dy = np.array([(y0 + y1) / 2 - 100 for _, y0, _, y1 in moved])
    assert np.all(np.abs(dx) <= j / 2 * 80 + 1e-9) and np.all(np.abs(dy) <= j / 2 * 80 + 1e-9)
    assert np.abs(dx).max() > 0.8 * j / 2 * 80 and abs(dx.mean()) < 1.0  # spread, unbiased
    with pytest.raises(ValueError, match="jitter must be >= 0"):
        jitter_box(box, -0.1, "u|1")
