"""Feedback on a search: positive and negative product ids refine it, excluded ids never return."""

from __future__ import annotations

import numpy as np
import pytest

from referred.feedback import MAX_FEEDBACK_IDS, refine
from referred.search.errors import QueryError, UnknownCategoryError, UnknownProductError
from tests.search.test_searcher import photo


def test_positive_and_negative_ids_move_the_query(searcher):
    image = photo(11)
    first = searcher.search(image, category="Bags", k=8)
    ids = [h.id for h in first]
    liked, disliked = ids[5], ids[0]
    refined = searcher.search(
        image, category="Bags", k=8, positive_ids=[liked], negative_ids=[disliked]
    )
    assert refined[0].id == liked
    q = searcher.encoder.encode([image], ["Bags"]).numpy()[0]
    vectors = searcher.index.get([liked, disliked]).vectors
    expected = refine(q, vectors[:1], vectors[1:])
    assert np.isclose(refined[0].score, float(vectors[0] @ expected), atol=1e-5)


def test_more_like_these_without_a_photo_and_excluded_ids(searcher):
    anchor = searcher.search(photo(12), category="Feet", k=3)[0].id
    hits = searcher.search(None, positive_ids=[anchor], k=5)
    assert hits[0].id == anchor and np.isclose(hits[0].score, 1.0, atol=1e-5)
    without = searcher.search(None, positive_ids=[anchor], exclude_ids=[anchor], k=5)
    assert anchor not in [h.id for h in without] and len(without) == 5
    assert [h.id for h in without] == [h.id for h in hits[1:]] + [without[-1].id]


def test_bad_feedback_is_named(searcher):
    image = photo(13)
    with pytest.raises(UnknownProductError, match="'nope'"):
        searcher.search(image, category="Bags", positive_ids=["nope"])
    with pytest.raises(QueryError, match="needs a photo, or positive_ids"):
        searcher.search(None, category="Bags")
    some = searcher.search(image, k=1)[0].id
    with pytest.raises(QueryError, match="a condition or a box needs a photo"):
        searcher.search(None, category="Bags", positive_ids=[some])
    with pytest.raises(QueryError, match="both positive and negative"):
        searcher.search(image, positive_ids=[some], negative_ids=[some])
    with pytest.raises(QueryError, match="list of product ids"):
        searcher.search(image, positive_ids=some)
    with pytest.raises(QueryError, match="list of product ids"):
        searcher.search(image, exclude_ids=7)
    with pytest.raises(QueryError, match=f"at most {MAX_FEEDBACK_IDS}"):
        searcher.search(image, exclude_ids=[f"x{i}" for i in range(MAX_FEEDBACK_IDS + 1)])


def test_excluded_categories_never_return_and_k_stays_full(searcher):
    image = photo(14)
    n = len(searcher)
    everything = searcher.search(image, k=n)
    feet = {h.id for h in everything if h.metadata["category"] == "Feet"}
    assert feet and len(feet) < n
    k = n - len(feet)  # exactly what is left: the search must look past every Feet product
    hits = searcher.search(image, k=k, exclude_categories=["feet"])  # matched as category is
    assert len(hits) == k and not feet & {h.id for h in hits}
    assert [h.id for h in hits] == [h.id for h in everything if h.id not in feet]
    both = searcher.search(image, k=3, exclude_categories=["Feet", "Head"])
    assert {h.metadata["category"] for h in both} == {"Bags"}
    with pytest.raises(UnknownCategoryError, match="'Socks'"):
        searcher.search(image, exclude_categories=["Socks"])
    with pytest.raises(QueryError, match="exclude_categories must be a list"):
        searcher.search(image, exclude_categories="Feet")


def test_exclude_texts_drop_products_whose_title_names_them(searcher):
    """Titles are "item 0" … "item 11": excluding "item 3" drops exactly that product, and the
    search looks further so k are still returned."""
    image = photo(40)
    k = len(searcher)
    every = searcher.search(image, k=k)
    hits = searcher.search(image, k=k - 1, exclude_texts=["Item 3"])
    assert [h.id for h in hits] == [h.id for h in every if h.metadata["title"] != "item 3"]
    assert searcher.search(image, k=k, exclude_texts=["item"]) == []
    with pytest.raises(QueryError, match="exclude_texts must be a list"):
        searcher.search(image, exclude_texts="item 3")
