"""User errors and bugs are told apart by one declared set.

Errors the Searcher raises for a request (``referred.search.errors.USER_ERRORS``) become 4xx
answers with a specific code and the message naming the value; anything else, ``KeyError`` and
``ValueError`` included, is a bug: a JSON 500 carrying the request id, the traceback in the
``referred.web`` log, and the server answers the next request as usual.
"""

from __future__ import annotations

import logging

import pytest

from referred.imageio import ImageDecodeError
from referred.index.errors import (
    CorruptIndexError,
    FilterError,
    MetadataError,
    UnknownFieldError,
)
from referred.search.errors import (
    USER_ERRORS,
    IndexMismatchError,
    QueryError,
    UnknownCategoryError,
    UnknownProductError,
)
from referred.web.routes_deps import get_searcher


class Raising:
    """A stand-in Searcher (swapped in with dependency_overrides) whose calls raise ``exc``."""

    def __init__(self, fake, exc: BaseException) -> None:
        self.fake, self.exc = fake, exc
        self.category_choices = fake.category_choices
        self.categories, self.accepts_text = fake.categories, fake.accepts_text

    def _raise(self, *args, **kwargs):
        raise self.exc

    search = search_many = shop_the_look = attention = product = _raise
    presence = presence_all = _raise
    has_presence = True  # so /search asks it too


def _swap(client, exc: BaseException) -> None:
    broken = Raising(client.app.state.fake, exc)
    client.app.dependency_overrides[get_searcher] = lambda: broken


def _search(client, photo, **headers):
    return client.post(
        "/search",
        files={"image": ("q.png", photo, "image/png")},
        data={"category": "Bags"},
        headers=headers,
    )


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("category"),
        ValueError("could not broadcast input array from shape (3,) into shape (4,)"),
        RuntimeError("something internal broke"),
        IndexMismatchError("64-d embeddings but the index holds 8-d"),
        CorruptIndexError("vectors.npy is truncated"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_bug_is_a_logged_500_with_the_request_id(make_client, photo, caplog, exc):
    client = make_client(raise_errors=False)
    _swap(client, exc)
    with caplog.at_level(logging.ERROR, logger="referred.web"):
        r = _search(client, photo, **{"X-Request-ID": "req-42"})
    assert r.status_code == 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"] == "req-42"
    err = r.json()["error"]
    assert err == {
        "status": 500,
        "code": "internal_error",
        "message": "unexpected server error; quote request id req-42 when reporting it",
        "request_id": "req-42",
    }
    records = [rec for rec in caplog.records if rec.name == "referred.web"]
    assert len(records) == 1 and "req-42" in records[0].getMessage()
    logged_type, logged, _ = records[0].exc_info
    assert logged_type is type(exc) and logged is exc  # the traceback is in the log
    assert "Traceback" in caplog.text and str(exc.args[0]) in caplog.text
    # the server goes on: the same app answers the next requests
    assert client.get("/healthz").status_code == 200
    client.app.dependency_overrides[get_searcher] = lambda: client.app.state.fake
    assert _search(client, photo).status_code == 200


def test_a_bug_in_a_product_read_is_a_500_too(make_client):
    client = make_client(raise_errors=False)
    _swap(client, KeyError("p001"))  # a bare KeyError is not "unknown product"
    r = client.get("/products/p001")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("exc", "status", "code", "words"),
    [
        (UnknownCategoryError("Socks", ("Bags", "Feet")), 422, "unknown_category", "Bags, Feet"),
        (QueryError("k must be an int from 1 to 5, got 9"), 422, "invalid_query", "from 1 to 5"),
        (UnknownProductError("p999"), 404, "unknown_product", "'p999'"),
        (
            UnknownFieldError("colour", ["category", "title"]),
            422,
            "unknown_filter_field",
            "'colour'; known fields: 'category', 'title'",
        ),
        (FilterError("a filter value must be a scalar"), 422, "invalid_filter", "scalar"),
        (MetadataError("field 'price' holds float"), 422, "invalid_metadata", "price"),
        (
            ImageDecodeError("<_io.BytesIO object at 0x7f3a2c1b2d90>: not a readable image"),
            422,
            "corrupt_image",
            "JPEG, PNG, WebP, GIF, BMP or TIFF",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isidentifier() else None,
)
def test_every_user_error_is_a_specific_4xx(make_client, photo, exc, status, code, words):
    assert isinstance(exc, USER_ERRORS)
    client = make_client()  # re-raises server exceptions: a 500 would fail here
    _swap(client, exc)
    r = _search(client, photo)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and words in err["message"], err
    assert "0x" not in err["message"] and "_io." not in err["message"]


def test_user_errors_are_declared_once_and_exclude_server_faults():
    assert not issubclass(IndexMismatchError, USER_ERRORS)
    assert not issubclass(CorruptIndexError, USER_ERRORS)
    assert not any(kind in (KeyError, ValueError, Exception) for kind in USER_ERRORS)


def test_an_unknown_filter_field_names_it_and_the_known_ones(client, photo):
    r = client.post(
        "/search",
        files={"image": ("q.png", photo)},
        data={"category": "Bags", "filter": '{"colour": "red"}'},
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "unknown_filter_field"
    assert "'colour'" in err["message"]
    assert "known fields: 'category', 'image', 'price', 'title'" in err["message"]
