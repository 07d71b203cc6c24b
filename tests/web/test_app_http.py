"""HTTP semantics: HEAD and OPTIONS, Allow, ids that cannot alias sub-resources, form fields
sent twice, yes/no flags, and what results and health show (no internals)."""

from __future__ import annotations

import pytest

GET_PATHS = [
    "/healthz",
    "/categories",
    "/samples",
    "/samples/scene-1.png",
    "/products/p001",
    "/products/p001/image",
    "/",
    "/docs",
    "/openapi.json",
    "/static/app.js",
]


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_like_get_without_a_body(client, path):
    got, head = client.get(path), client.head(path)
    assert got.status_code == 200 and head.status_code == 200, (path, head.text)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def test_head_of_a_missing_product_is_404_without_a_body(client):
    r = client.head("/products/nope")
    assert r.status_code == 404 and r.content == b""


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/products/p001", "GET, HEAD, DELETE, OPTIONS"),
        ("/products/bags/tote 12", "GET, HEAD, DELETE, OPTIONS"),
        ("/products/p001/image", "GET, HEAD, OPTIONS"),
        ("/products", "POST, OPTIONS"),
        ("/search", "POST, OPTIONS"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/static/app.js", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_lists_the_methods_of_the_path(client, path, allow):
    r = client.options(path)
    assert r.status_code == 204 and r.headers["allow"] == allow
    assert r.headers["x-request-id"]


def test_options_on_an_unknown_path_is_404(client):
    r = client.options("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/products/p001", "GET, HEAD, DELETE, OPTIONS"),
        ("get", "/search", "POST, OPTIONS"),
        ("head", "/search", "POST, OPTIONS"),
        ("delete", "/products/p001/image", "GET, HEAD, OPTIONS"),
        ("post", "/healthz", "GET, HEAD, OPTIONS"),
    ],
)
def test_405_carries_the_allowed_methods(client, admin, method, path, allow):
    r = client.request(method.upper(), path, headers=admin)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    if method != "head":
        err = r.json()["error"]
        assert err["code"] == "method_not_allowed"
        assert (
            f"method {method.upper()} is not allowed" in err["message"] and allow in err["message"]
        )


def test_an_image_path_never_names_a_product(client, admin, png):
    """``DELETE /products/0/image`` must not delete a product "0/image"."""
    r = client.post(
        "/products", headers=admin, files={"image": ("n.png", png())}, data={"id": "0/image"}
    )
    assert r.status_code == 422 and "cannot end in '/image'" in r.json()["error"]["message"]
    index = client.app.state.fake.index
    index.upsert(["0/image"], index.get(["p001"]).vectors, [{"title": "planted"}])
    assert client.delete("/products/0/image", headers=admin).status_code == 405
    assert "0/image" in set(index.get(["0/image"], vectors=False).ids)  # still there
    r = client.get("/products/0%2Fimage")  # the encoded id is the image path too: never aliased
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("unknown product")


@pytest.mark.parametrize(
    "files",
    [
        [("image", ("a.png", b"1")), ("image", ("b.png", b"2"))],
        [("image", ("a.png", b"1")), ("category", (None, "Bags")), ("category", (None, "Feet"))],
        [("image", ("a.png", b"1")), ("k", (None, "3")), ("k", (None, "4"))],
    ],
    ids=["image", "category", "k"],
)
def test_a_field_sent_twice_is_refused(client, files):
    r = client.post("/search", files=files)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "duplicate_field"
    assert f"form field {files[-1][0]!r} was sent 2 times" in err["message"]


def test_repeated_categories_are_a_list(client, photo):
    files = [
        ("image", ("q.png", photo)),
        ("categories", (None, "Bags")),
        ("categories", (None, "Feet")),
    ]
    r = client.post("/shop-the-look", files=files)
    assert r.status_code == 200 and list(r.json()["results"]) == ["Bags", "Feet"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_attention_flag_words(client, photo, value, shown):
    r = client.post(
        "/search",
        files={"image": ("q.png", photo)},
        data={"category": "Bags", "attention": value},
    )
    assert r.status_code == 200 and (r.json().get("attention") is not None) is shown


@pytest.mark.parametrize("value", ["maybe", "on", "2", "truthy"])
def test_other_attention_values_are_refused(client, photo, value):
    r = client.post(
        "/search",
        files={"image": ("q.png", photo)},
        data={"category": "Bags", "attention": value},
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_flag"
    assert "true/false/1/0/yes/no" in err["message"] and repr(value) in err["message"]


def test_internal_labels_stay_on_the_server(client, photo, admin, png):
    index = client.app.state.fake.index
    meta = {"category": "Bags", "title": "spare", "image": "p001.png", "kind": "distractor"}
    index.upsert(["spare"], index.get(["p001"]).vectors, [meta])
    r = client.post(
        "/search",
        files={"image": ("q.png", photo)},
        data={"category": "Bags", "k": "30", "filter": '{"kind": "distractor"}'},
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["spare"]  # filtering on it still works, server-side
    assert "kind" not in results[0] and "image" not in results[0]
    assert "kind" not in client.get("/products/spare").json()


def test_healthz_shows_the_model_name_not_its_path(client):
    client.app.state.info = {"model": "/home/someone/models/condvit-b16-cat", "trained": True}
    assert client.get("/healthz").json()["model"] == "condvit-b16-cat"
    client.app.state.info = {"model": "Slep/CondViT-B16-txt"}
    assert client.get("/healthz").json()["model"] == "CondViT-B16-txt"


@pytest.mark.parametrize(
    ("pid", "words"),
    [
        (" x", "start or end with a space"),
        ("x\u3000", "start or end with a space"),
        ("a\x85b", "control characters"),
    ],
)
def test_new_ids_follow_the_id_rules(client, admin, png, pid, words):
    r = client.post("/products", headers=admin, files={"image": ("n.png", png())}, data={"id": pid})
    assert r.status_code == 422 and words in r.json()["error"]["message"]


def test_reading_an_id_that_cannot_exist_is_404(client):
    r = client.get("/products/%20x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_product"


def test_undeclared_fields_are_ignored_even_when_repeated(client, photo):
    files = [("image", ("q.png", photo)), ("category", (None, "Bags"))]
    files += [("note", (None, "a")), ("note", (None, "b"))]
    assert client.post("/search", files=files).status_code == 200


def test_a_file_where_text_is_expected_is_named(client, photo):
    files = {"image": ("q.png", photo), "category": ("c.txt", b"Bags")}
    r = client.post("/search", files=files)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "form field 'category' must be text, got a file"
