"""Several photos of one item in one search: their queries are averaged."""

from __future__ import annotations

import numpy as np
import pytest

from referred.search.errors import QueryError
from referred.search.searcher import MAX_QUERY_IMAGES
from tests.search.test_searcher import photo


def test_a_list_of_one_photo_is_that_photo(searcher):
    a = photo(50)
    assert searcher.search([a], category="Bags", k=5) == searcher.search(a, category="Bags", k=5)


def test_two_photos_search_with_the_mean_of_their_queries(searcher):
    a, b = photo(51), photo(52)
    qa, qb = searcher.embed(a, category="Feet"), searcher.embed(b, category="Feet")
    mean = (qa + qb) / np.linalg.norm(qa + qb)
    want = searcher._search_vectors(mean[None, :].astype(np.float32), 6, [None])[0]
    got = searcher.search((a, b), category="Feet", k=6)
    assert [h.id for h in got] == [h.id for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_too_many_or_no_photos_are_refused(searcher):
    with pytest.raises(QueryError, match=f"a list of 1 to {MAX_QUERY_IMAGES}, got 0"):
        searcher.search([], category="Bags")
    with pytest.raises(QueryError, match=f"got {MAX_QUERY_IMAGES + 1}"):
        searcher.search([photo(1)] * (MAX_QUERY_IMAGES + 1), category="Bags")
