"""Searcher.presence / presence_all on a real (tiny) model with a presence head attached."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from referred.presence import PresenceHead, attach, presence_features
from referred.search import Searcher
from referred.search.errors import QueryError, UnknownCategoryError
from tests.search.test_searcher import CATS, catalog_index, photo


@pytest.fixture(scope="module")
def with_head(model):
    """The tiny model with a head that says "absent" whatever it sees (a zeroed last layer
    with a bias of -6: probability sigmoid(-6) before calibration)."""
    m = copy.deepcopy(model)
    torch.manual_seed(0)
    head = PresenceHead(m.config.width, m.config.width, hidden=16, heads=2, feature_kind="tokens")
    with torch.no_grad():
        head.mlp[2].weight.zero_()
        head.mlp[2].bias.fill_(-6.0)  # absent, whatever the photo
    attach(m, head)
    return Searcher(m, catalog_index(m))


def test_without_a_head_there_is_no_answer(searcher):
    assert not searcher.has_presence
    assert searcher.presence(photo(0), category="Bags") is None
    assert searcher.presence_all(photo(0)) is None


def test_presence_answers_a_calibrated_probability_per_condition(with_head):
    assert with_head.has_presence
    p = with_head.presence(photo(1), category="bags")  # names match as for search
    assert (
        p is not None
        and not p.present
        and p.probability == pytest.approx(1 / (1 + math.exp(6)), rel=1e-4)
    )
    with_head.model.presence_head.b.fill_(12.0)  # calibration shifts it above the threshold
    try:
        assert with_head.presence(photo(1), category="Bags").present
    finally:
        with_head.model.presence_head.b.fill_(0.0)
    assert with_head.presence(photo(1)) is None  # nothing asked
    with pytest.raises(UnknownCategoryError):
        with_head.presence(photo(1), category="Hats")


def test_presence_all_is_one_pass_over_every_category_and_takes_a_box(with_head):
    found = with_head.presence_all(photo(2))
    assert list(found) == list(CATS)
    some = with_head.presence_all(photo(2), categories=["Head", "bags"], box="0,0,0.5,0.5")
    assert list(some) == ["Head", "Bags"]
    with pytest.raises(QueryError, match="list of names"):
        with_head.presence_all(photo(2), categories="Bags")


def test_the_searcher_uses_the_heads_features_of_the_photo(with_head):
    """Its probability equals the head applied by hand to the model's features."""
    m, img = with_head.model, photo(3)
    pixels = with_head.encoder.pixels([img])
    cond = with_head.encoder.condition_tensor([with_head.encoder.parse(category="Feet")])
    with torch.no_grad():
        want = m.presence_head.probability(presence_features(m, pixels), m.condition_token(cond))
    got = with_head.presence(img, category="Feet").probability
    assert got == pytest.approx(float(want[0, 0]), rel=1e-5)
