"""The query path zooms: a conditioned query is embedded as the close-up its locator finds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from referred.imageio import Photo
from referred.query import QueryEncoder, QueryError, UnsupportedConditionError
from referred.zoom import attach
from referred.zoom.crop import zoom_pixels
from referred.zoom.head import Locator

BOX = (0.3, 0.6, 0.2, 0.1)  # (cx, cy, w, h) fractions of the padded square


class FixedLocator(Locator):
    """Always finds BOX, and looks only at cell 5."""

    def forward(self, features, cond_tokens):
        logits = torch.full((len(features), self.grid**2), -30.0)
        logits[:, 5] = 0.0
        return logits, torch.tensor(BOX).expand(len(features), 4)


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))  # 60 wide


@pytest.fixture
def zooming(model):
    attach(model, FixedLocator(32, 32, 4, hidden=8), 0.25)
    yield model
    attach(model, None)


def test_a_conditioned_query_is_the_close_up_of_the_located_box(zooming, photo):
    whole = QueryEncoder(zooming, zoom=False)
    # padded square side 60, the photo 10 px down: box centre (18, 26), 12 × 6 px; side 18
    expected = whole.encode([photo.crop((9, 17, 27, 35))], "Bags")
    got = QueryEncoder(zooming).encode([photo], "Bags")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, whole.encode([photo], "Bags"), atol=1e-3)


def test_a_photo_shared_by_a_request_is_preprocessed_once_and_gives_the_same_vectors(
    zooming, photo, monkeypatch
):
    import referred.preprocess as pre

    enc = QueryEncoder(zooming)
    bags, feet = enc.encode([photo], "Bags"), enc.encode([photo], "Feet")
    calls = []
    real = pre._preprocess
    monkeypatch.setattr(pre, "_preprocess", lambda src, cfg: calls.append(src) or real(src, cfg))
    shared = Photo(photo)
    assert torch.equal(enc.encode([shared], "Bags"), bags)
    assert torch.equal(enc.encode([shared], "Feet"), feet)
    # the whole photo once (for the locator, both times), and each close-up
    assert sum(src is photo for src in calls) == 1 and len(calls) == 3


def test_unconditioned_queries_and_encoders_without_zoom_see_the_whole_photo(zooming, photo):
    whole = QueryEncoder(zooming, zoom=False)
    assert torch.equal(QueryEncoder(zooming).encode([photo]), whole.encode([photo]))
    assert not QueryEncoder(zooming, zoom=False).zooms(whole.conditions("Bags", 1))


def test_pixels_are_zoomed_from_the_pixels(zooming, photo):
    enc, whole = QueryEncoder(zooming), QueryEncoder(zooming, zoom=False)
    pixels = enc.pixels([photo])
    conds = enc.conditions("Bags", 1)
    expected = whole.forward(zoom_pixels(pixels, torch.tensor([BOX]), 0.25), conds)
    assert torch.allclose(enc.forward(pixels, conds), expected, atol=1e-6)
    # and nearly what the photo's own close-up gives (the pixels are a resized copy)
    assert float(enc.forward(pixels, conds) @ enc.encode([photo], "Bags").T) > 0.9


def test_the_overlay_is_where_the_locator_found_the_item(zooming, photo):
    enc = QueryEncoder(zooming)
    heat = enc.attention_map(enc.pixels([photo]), enc.conditions("Bags", 1))
    assert heat.shape == (1, 16, 16) and float(heat.sum()) == pytest.approx(1.0)
    # BOX misses cell 5 where all the heat is: the heat map itself, 4 x finer
    assert float(heat[0, 4:8, 4:8].sum()) == pytest.approx(1.0)
    assert torch.allclose(heat[0, 4:8, 4:8], torch.full((4, 4), 1 / 16))


def test_locating_needs_a_locator_and_a_condition(model, zooming, photo):
    enc = QueryEncoder(zooming)
    with pytest.raises(QueryError, match="needs a category or a text"):
        enc.locate(enc.pixels([photo]), enc.conditions(None, 1))
    attach(model, None)
    with pytest.raises(UnsupportedConditionError, match="no locator"):
        QueryEncoder(model).locate(enc.pixels([photo]), enc.conditions("Bags", 1))


def test_zoom_pixels_cuts_and_resizes_each_row():
    pixels = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.25, 0.25, 1 / 6, 1 / 6]])
    out = zoom_pixels(pixels, boxes, 0.25)
    assert torch.equal(out[0], pixels[0])  # the window is the whole square
    window = pixels[1:2, :, 4:12, 4:12]  # side 1.5 × 32 / 6 = 8 px around (8, 8)
    up = torch.nn.functional.interpolate(window, size=(32, 32), mode="bilinear")
    assert torch.allclose(out[1], up[0])


def test_shop_the_look_cuts_each_close_up_from_the_photo(zooming, photo, monkeypatch):
    from referred.search import Searcher
    from tests.search.test_searcher import catalog_index

    searcher = Searcher(zooming, catalog_index(zooming))
    seen = []
    real = searcher._search_vectors
    monkeypatch.setattr(searcher, "_search_vectors", lambda v, *a: seen.append(v) or real(v, *a))
    looks = searcher.shop_the_look(photo, categories=["Bags", "Feet"], k=2)
    assert list(looks) == ["Bags", "Feet"]
    enc = QueryEncoder(zooming)
    expected = torch.cat([enc.encode([photo], "Bags"), enc.encode([photo], "Feet")])
    # the photo's own close-ups, not ones cut from its preprocessed square
    assert np.allclose(seen[0], expected.numpy(), atol=1e-5)


def test_several_views_are_pooled_from_the_photo_and_from_the_pixels(zooming, photo):
    from referred.zoom.views import Views, pool

    views = Views((0.1, 0.3), flip=True)
    enc, whole = QueryEncoder(zooming, zoom_views=views), QueryEncoder(zooming, zoom=False)
    expected = pool(torch.stack([whole.encode([c], "Bags") for c in views.cut(photo, BOX)]))
    got = enc.encode([photo, photo], "Bags")
    assert torch.allclose(got, expected.expand(2, -1), atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(2))
    single = QueryEncoder(zooming).encode([photo], "Bags")  # the model's own: one close-up
    assert not torch.allclose(got[:1], single, atol=1e-4)
    pixels = enc.pixels([photo])
    conds = enc.conditions("Bags", 1)
    cut = views.cut_pixels(pixels, torch.tensor([BOX]))
    expected = pool(torch.stack([whole.forward(c, conds) for c in cut]))
    assert torch.allclose(enc.forward(pixels, conds), expected, atol=1e-6)
    with pytest.raises(TypeError, match="zoom_views must be"):
        QueryEncoder(zooming, zoom_views=0.25)
