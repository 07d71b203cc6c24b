"""A box limits a query to that part of the photo: the same answer as cropping it first."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from referred.region import BoxError
from referred.search.errors import QueryError
from tests.search.test_searcher import photo


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def same_hits(a, b):
    assert [h.id for h in a] == [h.id for h in b]
    assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_a_box_searches_its_crop(searcher):
    image = photo(3, size=(40, 60))
    cropped = image.crop((30, 10, 60, 40))
    for box in ("30,10,60,40", "0.5,0.25,1,1", (30, 10, 60, 40)):
        same_hits(
            searcher.search(png(image), category="Bags", k=5, box=box),
            searcher.search(cropped, category="Bags", k=5),
        )
    unconditioned = searcher.search(image, k=5, box="0.5,0.25,1,1")  # the paper's crop baseline
    same_hits(unconditioned, searcher.search(cropped, k=5))
    whole = searcher.search(image, category="Bags", k=5)
    assert [h.score for h in whole] != [
        h.score for h in searcher.search(cropped, category="Bags", k=5)
    ]


def test_shop_the_look_and_attention_take_the_box(searcher):
    image = photo(4, size=(40, 60))
    cropped = image.crop((0, 0, 30, 40))
    looks = searcher.shop_the_look(image, k=3, box="0,0,0.5,1")
    expected = searcher.shop_the_look(cropped, k=3)
    assert looks.keys() == expected.keys()
    for c in looks:
        same_hits(looks[c], expected[c])
    amap = searcher.attention(image, category="Feet", box="0,0,30,40")
    assert np.allclose(amap, searcher.attention(cropped, category="Feet"), atol=1e-6)


def test_bad_boxes_are_query_errors(searcher):
    image = photo(5, size=(40, 60))
    with pytest.raises(BoxError, match="outside the 60x40 image"):
        searcher.search(image, category="Bags", box="0,0,61,40")
    with pytest.raises(BoxError, match="empty or inverted"):
        searcher.search(image, category="Bags", box="0.6,0,0.4,1")
    import torch

    with pytest.raises(QueryError, match="needs the photo itself"):
        searcher.attention(torch.zeros(1, 3, 64, 64), category="Bags", box="0,0,1,1")
