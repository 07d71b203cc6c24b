"""Views of a zoomed query: which close-ups, in what order, pooled how; bad views refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from referred.zoom import save_locator
from referred.zoom.crop import close_up, zoom_pixels
from referred.zoom.head import Locator
from referred.zoom.io import load_locator
from referred.zoom.views import Views, candidates, pool

BOX = (0.4, 0.5, 0.2, 0.3)


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))


def test_views_cut_each_margin_then_its_mirror(photo):
    views = Views((0.05, 0.25), flip=True)
    assert views.count == 4 and views.label() == "0.05+0.25 mirrored"
    cut = views.cut(photo, BOX)
    expect = [close_up(photo, BOX, 0.05), close_up(photo, BOX, 0.25)]
    expect = [expect[0], ImageOps.mirror(expect[0]), expect[1], ImageOps.mirror(expect[1])]
    assert [np.asarray(c).tolist() for c in cut] == [np.asarray(e).tolist() for e in expect]
    assert len(Views((0.25,)).cut(photo, BOX)) == 1


def test_views_of_pixels_follow_the_same_order():
    pixels = torch.randn(2, 3, 32, 32)
    boxes = torch.tensor([BOX, (0.5, 0.5, 0.4, 0.4)])
    out = Views((0.1, 0.3), flip=True).cut_pixels(pixels, boxes)
    assert out.shape == (4, 2, 3, 32, 32)
    assert torch.equal(out[0], zoom_pixels(pixels, boxes, 0.1))
    assert torch.equal(out[1], zoom_pixels(pixels, boxes, 0.1).flip(-1))
    assert torch.equal(out[3], zoom_pixels(pixels, boxes, 0.3).flip(-1))


def test_pool_is_the_unit_mean_of_unit_vectors():
    v = torch.tensor([[[3.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, -5.0]]])  # 2 views, 2 queries
    out = pool(v)
    s = 2**-0.5
    assert torch.allclose(out[0], torch.tensor([s, s]))
    assert torch.allclose(out[1], torch.tensor([0.0, 0.0]))  # opposite views cancel: zero, no NaN
    assert torch.allclose(pool(v[:1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(views, queries, dim\)"):
        pool(torch.zeros(2, 3))


def test_candidates_are_single_margins_and_pairs_within_the_views_allowed():
    one = candidates((0.25, 0.05), max_views=1)
    assert one == [Views((0.05,)), Views((0.25,))]
    two = candidates((0.05, 0.25), max_views=2)
    assert two == [Views((0.05,)), Views((0.05,), True), Views((0.25,)), Views((0.25,), True),
                   Views((0.05, 0.25))]  # fmt: skip
    assert len(candidates((0.05, 0.1, 0.25), max_views=4)) == 3 * 2 + 3 * 2
    with pytest.raises(ValueError, match="max_views must be at least 1"):
        candidates((0.1,), max_views=0)


@pytest.mark.parametrize(
    "grows, flip, match",
    [
        ((), False, "one or more margins >= 0"),
        ((0.1, -0.2), False, "one or more margins >= 0"),
        ((float("nan"),), False, "one or more margins >= 0"),
        ((0.1, 0.1), False, "must differ"),
        (("wide",), False, "must be numbers"),
        ((0.1,), "yes", "flip must be true or false"),
    ],
)
def test_bad_views_are_refused_by_name(grows, flip, match):
    with pytest.raises(ValueError, match=match):
        Views(grows, flip)


def test_views_round_trip_and_a_bad_record_is_named(tmp_path):
    views = Views((0.05, 0.25), flip=True)
    assert Views.from_record(json.loads(json.dumps(views.record()))) == views
    assert Views.from_record({"grows": [0.2]}) == Views((0.2,))
    for bad in ({"flip": True}, {"grows": "0.2"}, [0.2], {"grows": [0.2], "flip": 1}):
        with pytest.raises(ValueError):
            Views.from_record(bad)
    save_locator(tmp_path, Locator(8, 8, 4, hidden=16), views)
    record = json.loads((tmp_path / "locator.json").read_text())
    record["views"] = {"grows": [-1]}
    (tmp_path / "locator.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="is not a locator: grows must be one or more margins"):
        load_locator(tmp_path, 8)
