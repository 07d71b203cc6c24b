"""Rocchio feedback on unit vectors, checked against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from referred.feedback import ALPHA, BETA, GAMMA, refine


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def test_rocchio_by_hand():
    q = np.array([1.0, 0.0, 0.0])
    pos = np.array([[0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    neg = np.array([[0.0, 0.0, 2.0]])  # scale does not matter: each part is made unit
    got = refine(q, pos, neg)
    mean_pos = unit([0.0, 0.8, 0.4])
    want = unit(ALPHA * q + BETA * mean_pos - GAMMA * np.array([0.0, 0.0, 1.0]))
    assert np.allclose(got, want, atol=1e-6) and got.dtype == np.float32
    assert np.isclose(np.linalg.norm(got), 1.0, atol=1e-6)
    assert np.allclose(refine(q), q)  # nothing marked: the query itself
    assert np.allclose(refine(None, pos), mean_pos, atol=1e-6)  # more like these


def test_a_marked_product_overtakes_the_others():
    rng = np.random.default_rng(0)
    catalog = rng.normal(size=(50, 16))
    catalog /= np.linalg.norm(catalog, axis=1, keepdims=True)
    q = unit(catalog[3] + 0.5 * catalog[7])
    assert int(np.argmax(catalog @ q)) == 3  # the query prefers product 3
    assert int(np.argmax(catalog @ refine(q, catalog[[7]]))) == 7  # 7 marked good
    assert int(np.argmax(catalog @ refine(q, None, catalog[[3]], gamma=1.0))) != 3  # 3 marked bad


def test_nothing_to_search_with_is_an_error():
    with pytest.raises(ValueError, match="at least one positive"):
        refine(None)
    with pytest.raises(ValueError, match="cancel out"):
        refine(np.array([1.0, 0.0]), None, np.array([[1.0, 0.0]]), gamma=1.0)


def test_exclusion_terms_are_checked_and_normalised():
    from referred.feedback import MAX_EXCLUDE_TEXTS, exclusion_terms

    assert exclusion_terms(["Black", " light  blue ", "black"]) == ["black", "light blue"]
    assert exclusion_terms(None) == []
    for bad, message in [
        ("black", "a list of words"),
        ([""], "a letter or digit"),
        (["- -"], "a letter or digit"),
        (["x" * 101], "at most 100 characters"),
        ([f"w{i}" for i in range(MAX_EXCLUDE_TEXTS + 1)], "at most 20 excluded texts"),
    ]:
        with pytest.raises(ValueError, match=message):
            exclusion_terms(bad)


@pytest.mark.parametrize(
    "metadata, terms, hit",
    [
        ({"title": "A black leather tote"}, ["black"], True),
        ({"title": "blackberry scarf"}, ["black"], False),  # whole words only
        ({"title": "Scarf", "color": "Light-Blue"}, ["light blue"], True),  # fields, punctuation
        ({"caption": "a red and white striped top"}, ["striped top"], True),
        ({"caption": "a red top", "category": "black"}, ["black"], False),  # not a text field
        ({"title": "a black tote"}, [], False),
    ],
)
def test_mentions_matches_whole_words_in_the_catalog_text(metadata, terms, hit):
    from referred.feedback import mentions

    assert mentions(metadata, terms) is hit
