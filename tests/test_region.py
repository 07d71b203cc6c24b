"""Boxes: parsed from what users send, checked against the image, cropped exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from referred.region import MIN_SIDE_PX, Box, BoxError, crop, crop_source, parse_box


@pytest.mark.parametrize(
    "value",
    ["0.1,0.2,0.5,0.9", " 0.1 , 0.2,0.5 , 0.9 ", "[0.1, 0.2, 0.5, 0.9]", (0.1, 0.2, 0.5, 0.9),
     [0.1, 0.2, 0.5, 0.9], Box(0.1, 0.2, 0.5, 0.9), np.array([0.1, 0.2, 0.5, 0.9])],
)  # fmt: skip
def test_the_accepted_spellings_give_one_box(value):
    box = parse_box(value)
    assert box == Box(0.1, 0.2, 0.5, 0.9) and box.fractional
    assert str(box) == "0.1,0.2,0.5,0.9"


def test_fractions_and_pixels_are_told_apart_by_the_values():
    assert parse_box("0,0,1,1").pixels(40, 30) == (0, 0, 40, 30)  # all in [0, 1]: the whole
    assert parse_box("0.25,0.5,0.75,1").pixels(40, 30) == (10, 15, 30, 30)
    assert not parse_box("10,5,30,25").fractional
    assert parse_box("10,5,30,25").pixels(40, 30) == (10, 5, 30, 25)
    assert parse_box("10.4,5.6,29.5,24.2").pixels(40, 30) == (10, 5, 30, 25)  # outward
    assert parse_box("0,0,40,30").pixels(40, 30) == (0, 0, 40, 30)


@pytest.mark.parametrize(
    "value, message",
    [
        ("1,2,3", "four numbers"),
        ("1,2,3,4,5", "four numbers"),
        ("a,b,c,d", "'a' is no number"),
        ("[1, 2, 3", "is not x0,y0,x1,y1"),
        ("nan,0,1,1", "finite"),
        ("0,0,inf,1", "finite"),
        ("-0.1,0,0.5,0.5", "values must be ≥ 0"),
        ("0.5,0.5,0.2,0.9", "empty or inverted"),
        ("0.5,0.5,0.5,0.9", "empty or inverted"),
        ([True, 0, 1, 1], "no number"),
        (12, "got a int"),
        (None, "got a NoneType"),
    ],
)
def test_malformed_boxes_are_named(value, message):
    with pytest.raises(BoxError, match=message) as info:
        parse_box(value)
    assert isinstance(info.value, ValueError)  # a QueryError: the service answers 4xx


def test_boxes_outside_or_too_small_for_the_image_are_refused():
    with pytest.raises(BoxError, match="outside the 40x30 image"):
        parse_box("10,5,41,25").pixels(40, 30)
    with pytest.raises(BoxError, match="outside the 40x30 image"):
        parse_box("0,0,20,31").pixels(40, 30)
    with pytest.raises(BoxError, match=f"at least {MIN_SIDE_PX}x{MIN_SIDE_PX}"):
        parse_box("10,5,12,25").pixels(40, 30)
    with pytest.raises(BoxError, match="is 2x30 pixels"):
        parse_box("0.5,0,0.55,1").pixels(40, 30)


def test_crop_takes_exactly_the_pixels_inside():
    pixels = np.arange(30 * 40 * 3, dtype=np.uint32).reshape(30, 40, 3) % 251
    image = Image.fromarray(pixels.astype(np.uint8))
    got = np.asarray(crop(image, "10,5,30,25"))
    assert got.shape == (20, 20, 3)
    assert np.array_equal(got, pixels[5:25, 10:30].astype(np.uint8))
    half = np.asarray(crop(image, "0.5,0,1,1"))
    assert np.array_equal(half, pixels[:, 20:].astype(np.uint8))


def test_crop_source_decodes_first(tmp_path):
    path = tmp_path / "p.png"
    image = Image.new("RGBA", (20, 10), (255, 0, 0, 0))  # transparent: white once decoded
    image.paste((0, 0, 255, 255), (10, 0, 20, 10))
    image.save(path)
    left = np.asarray(crop_source(str(path), "0,0,0.5,1"))
    right = np.asarray(crop_source(path.read_bytes(), "0.5,0,1,1"))
    assert left.shape == (10, 10, 3) and (left == 255).all()
    assert (right == [0, 0, 255]).all()
