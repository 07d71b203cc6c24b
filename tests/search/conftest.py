"""Fixtures shared by the Searcher tests: a tiny category model and a Searcher over a small
flat catalog of it (helpers in ``tests.search.test_searcher``)."""

from __future__ import annotations

import pytest

import referred
from referred.search import Searcher
from tests.search.test_searcher import CATS, catalog_index


@pytest.fixture(scope="module")
def model():
    return referred.create_model("tiny", categories=CATS, seed=0)


@pytest.fixture(scope="module")
def searcher(model):
    return Searcher(model, catalog_index(model))
