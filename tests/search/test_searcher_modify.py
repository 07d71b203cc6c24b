"""``Searcher.search(modify=..., like=...)``: composing never changes plain search, composes
through the Combiner otherwise, and bad input is a user error naming what is accepted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import referred
from referred.cir import Combiner, CombinerConfig
from referred.cir.compose import MAX_MODIFY_CHARS
from referred.cir.io import CIRHead
from referred.model.encoding import set_text_encoder
from referred.search import USER_ERRORS, QueryError, Searcher, UnknownProductError
from referred.search.errors import UnsupportedConditionError
from tests.search.test_searcher import catalog_index, fake_text_encoder, png


def _head(dim: int, text_encoder: str) -> CIRHead:
    torch.manual_seed(0)
    net = Combiner(CombinerConfig(image_dim=dim, text_dim=384))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return CIRHead(net, text_encoder)


@pytest.fixture(scope="module")
def pair():
    """(a searcher whose text model has a Combiner, the same model's searcher without one)."""
    plain = referred.create_model("tiny", conditioning="text", seed=1)
    set_text_encoder(plain, fake_text_encoder)
    composing = referred.create_model("tiny", conditioning="text", seed=1)
    set_text_encoder(composing, fake_text_encoder)
    composing.cir_head = _head(composing.config.output_dim, composing.config.text_encoder)
    index = catalog_index(plain)
    return Searcher(composing, index), Searcher(plain, catalog_index(plain))


@pytest.mark.parametrize("condition", [{}, {"text": "a red bag"}, {"category": "Bags"}])
def test_without_modify_the_search_is_the_models_own(pair, condition):
    composing, plain = pair
    assert composing.composer is not None and plain.composer is None
    a = composing.search(png(2), k=6, **condition)
    b = plain.search(png(2), k=6, **condition)
    assert [(h.id, h.score) for h in a] == [(h.id, h.score) for h in b]  # identical vectors


def test_modify_composes_the_query_item_with_the_combiner(pair):
    s, _ = pair
    hits = s.search(png(2), text="a red bag", modify="  in red\n", k=5)
    q = s.embed(png(2), text="a red bag")
    with torch.no_grad():
        v = s.model.cir_head.net(torch.from_numpy(q[None]), fake_text_encoder(["in red"]))
    _, ids = s.index.search(v.numpy(), 5)
    assert [h.id for h in hits] == list(ids[0])
    assert [h.id for h in hits] != [h.id for h in s.search(png(2), text="a red bag", k=5)]


def test_like_composes_from_the_stored_vector_and_leaves_the_product_out(pair):
    s, _ = pair
    hits = s.search(None, like="p3", modify="same but striped", k=4)
    stored = s.index.get(["p3"]).vectors
    with torch.no_grad():
        v = s.model.cir_head.net(torch.from_numpy(stored), fake_text_encoder(["same but striped"]))
    _, ids = s.index.search(v.numpy(), 5)
    assert [h.id for h in hits] == [i for i in ids[0] if i != "p3"][:4]
    plain = s.search(None, like="p3", k=4)  # like alone: the product's neighbours
    assert "p3" not in [h.id for h in plain] and len(plain) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"modify": ""}, QueryError, "modify is empty; say what to change, e.g. 'in red'"),
        ({"modify": " \t"}, QueryError, "modify is empty"),
        ({"modify": "x" * (MAX_MODIFY_CHARS + 1)}, QueryError, f"at most {MAX_MODIFY_CHARS}"),
        ({"modify": 3}, QueryError, "modify must be a text such as 'in red'"),
        ({"like": "nope", "modify": "in red"}, UnknownProductError, "unknown product id 'nope'"),
        ({"like": "", "modify": "in red"}, QueryError, "like must be a product id"),
    ],
)
def test_bad_modifications_are_user_errors(pair, kwargs, error, message):
    s, _ = pair
    image = None if "like" in kwargs else png(1)
    with pytest.raises(error, match=message) as info:
        s.search(image, **kwargs)
    assert isinstance(info.value, USER_ERRORS)


def test_what_a_modification_needs(pair, searcher):
    s, plain = pair
    for no_combiner in (plain, searcher):  # a text model and a category model
        with pytest.raises(UnsupportedConditionError, match="has no Combiner") as info:
            no_combiner.search(png(1), modify="in red")
        assert isinstance(info.value, USER_ERRORS)
    with pytest.raises(QueryError, match="modify needs a photo or like="):
        s.search(None, positive_ids=["p1"], modify="in red")
    with pytest.raises(QueryError, match="give no photo, condition or box"):
        s.search(png(1), like="p1", modify="in red")
    assert np.isfinite([h.score for h in s.search(None, positive_ids=["p1"], k=3)]).all()
