"""POST/DELETE /products: 403 when no token is configured, 401 without the right one."""

from __future__ import annotations

import json

import pytest

WRITES = [
    ("post", "/products"),
    ("delete", "/products/p001"),
]


def _call(client, method, path, headers=None, png=None):
    if method == "post":
        return client.post(
            path, headers=headers or {}, files={"image": ("n.png", png())}, data={"id": "x1"}
        )
    return client.delete(path, headers=headers or {})


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_writes_disabled_without_a_configured_token(make_client, png, admin, method, path):
    client = make_client(admin_token="")
    r = _call(client, method, path, admin, png)
    assert r.status_code == 403
    assert "no admin token is configured" in r.json()["error"]["message"]
    assert client.get("/healthz").json()["writes_enabled"] is False
    assert client.get("/products/p001").status_code == 200  # reads still work


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic czNjcmV0LWFkbWluLXRva2Vu"},
        {"Authorization": "s3cret-admin-token"},
        {"Authorization": "Bearer s3cret-admin-token-and-more"},
        {"X-Token": "s3cret-admin-token"},
    ],
)
def test_refused_without_the_token(client, png, method, path, headers):
    r = _call(client, method, path, headers, png)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"
    assert client.get("/products/p001").status_code == 200  # nothing was deleted


def test_auth_is_checked_before_the_body_is_parsed(client):
    r = client.post(
        "/products",
        content=b"\x00garbage",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 401


def test_scheme_is_case_insensitive(client, png):
    r = client.post(
        "/products",
        headers={"Authorization": "bearer s3cret-admin-token"},
        files={"image": ("n.png", png())},
        data={"id": "x2"},
    )
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("data", "files", "status", "words"),
    [
        ({"category": "Bags"}, True, 422, "product id"),
        ({"id": "a\x00b"}, True, 422, "control characters"),
        ({"id": "x" * 300}, True, 422, "1 to 256"),
        ({"id": "ok"}, False, 422, "missing form field 'image'"),
        ({"id": "ok", "category": "Hats"}, True, 422, "unknown category"),
        ({"id": "ok", "metadata": "[1]"}, True, 422, "JSON object"),
        ({"id": "ok", "metadata": "{oops"}, True, 400, "not valid JSON"),
        (
            {"id": "ok", "metadata": json.dumps({"image": "../../etc/passwd"})},
            True,
            422,
            "http(s) URL",
        ),
        ({"id": "ok", "metadata": json.dumps({"nested": {"a": 1}})}, True, 422, "nested"),
        ({"id": "ok", "metadata": json.dumps({"id": "other"})}, True, 422, "own form field"),
        ({"id": "ok", "metadata": json.dumps({"price": "cheap"})}, True, 422, "price"),
    ],
)
def test_bad_product_uploads(client, admin, png, data, files, status, words):
    r = client.post(
        "/products",
        headers=admin,
        data=data,
        files={"image": ("n.png", png())} if files else {"note": ("n.txt", b"x")},
    )
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


@pytest.mark.parametrize("image", [b"", b"<svg/>", b"not an image"])
def test_bad_product_images(client, admin, image):
    r = client.post(
        "/products", headers=admin, data={"id": "ok"}, files={"image": ("n.png", image)}
    )
    assert r.status_code in (415, 422)
    assert client.get("/products/ok").status_code == 404  # nothing was added


def test_delete_unknown_product(client, admin):
    r = client.delete("/products/nope", headers=admin)
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


def test_remote_image_urls_are_kept_and_redirected(client, admin, png):
    url = "https://img.example.com/p/1.jpg"
    r = client.post(
        "/products",
        headers=admin,
        files={"image": ("n.png", png())},
        data={"id": "remote", "metadata": json.dumps({"image": url})},
    )
    assert r.status_code == 201 and r.json()["image_url"] == url
    r = client.get("/products/remote/image", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == url
