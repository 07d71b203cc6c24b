"""Happy paths of the HTTP API, in-process, with the fake Searcher."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from referred.categories import LRVSF_CATEGORIES
from referred.query import MAX_TEXT_CHARS


def search(client, photo, **fields):
    return client.post("/search", files={"image": ("q.png", photo, "image/png")}, data=fields)


def test_search_by_category(client, photo):
    r = search(client, photo, category="Bags", k="5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["condition"] == {"category": "Bags", "text": None}
    assert body["k"] == 5 and len(body["results"]) == 5
    first = body["results"][0]
    assert set(first) >= {"id", "score", "category", "title", "image_url", "price"}
    assert "image" not in first  # server paths never leave the service
    assert first["image_url"] == f"/products/{first['id']}/image"
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert r.headers["x-request-id"]


def test_category_is_matched_case_insensitively(client, photo):
    r = search(client, photo, category="lower body")
    assert r.status_code == 200 and r.json()["condition"]["category"] == "Lower Body"


def test_default_k_and_filter(client, photo):
    r = search(client, photo, category="Feet", filter=json.dumps({"category": ["Bags", "Head"]}))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 4 and {x["category"] for x in results} == {"Bags", "Head"}


def test_condition_changes_the_results(client, photo):
    a = [x["id"] for x in search(client, photo, category="Bags").json()["results"]]
    b = [x["id"] for x in search(client, photo, category="Neck").json()["results"]]
    assert a != b


def test_search_by_text(make_client, photo):
    client = make_client(accepts_text=True)
    r = search(client, photo, text="the striped scarf", k="3")
    assert r.status_code == 200, r.text
    assert r.json()["condition"] == {"category": None, "text": "the striped scarf"}
    assert client.get("/categories").json()["accepts_text"] is True


def test_search_with_attention(client, photo):
    r = search(client, photo, category="Head", attention="true")
    att = r.json()["attention"]
    assert att["size"] == 4 and len(att["grid"]) == 4
    assert np.isclose(np.sum(att["grid"]), 1.0, atol=1e-3)


def test_attention_endpoint(client, photo):
    r = client.post("/attention", files={"image": ("q.png", photo)}, data={"category": "Bags"})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == 4 and r.json()["condition"]["category"] == "Bags"


def test_shop_the_look_all_and_some(client, photo):
    r = client.post("/shop-the-look", files={"image": ("q.png", photo)})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert list(results) == list(LRVSF_CATEGORIES)
    assert all(x["category"] == cat for cat, rows in results.items() for x in rows)
    r = client.post(
        "/shop-the-look",
        files={"image": ("q.png", photo)},
        data={"categories": "feet, Bags", "k": "1"},
    )
    assert list(r.json()["results"]) == ["Feet", "Bags"]
    assert all(len(v) == 1 for v in r.json()["results"].values())
    r = client.post(
        "/shop-the-look", files={"image": ("q.png", photo)}, data={"categories": ["Head", "Neck"]}
    )
    assert list(r.json()["results"]) == ["Head", "Neck"]


def test_product_and_image(client):
    r = client.get("/products/p003")
    assert r.status_code == 200
    assert r.json()["title"] == "product 3" and r.json()["image_url"] == "/products/p003/image"
    img = client.get("/products/p003/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_categories_healthz_samples_pages(client):
    cats = client.get("/categories").json()
    assert cats["categories"] == list(LRVSF_CATEGORIES) and cats["accepts_text"] is False
    assert cats["categories_as_text"] is False
    assert cats["max_text_chars"] == MAX_TEXT_CHARS and cats["max_k"] == 100
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["writes_enabled"] is True
    samples = client.get("/samples").json()["samples"]
    assert samples == [
        {
            "name": "scene-1.png",
            "image_url": "/samples/scene-1.png",
            "caption": "a blue scene",
            "categories": None,
        }
    ]
    assert client.get("/samples/scene-1.png").headers["content-type"] == "image/png"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for html_path in ("/", "/docs"):  # every script and stylesheet is served from here
        text = client.get(html_path).text
        assert re.findall(r'<(?:script|link)[^>]*(?:src|href)="(?!/)', text) == [], html_path
    for asset in (
        "/static/app.js",
        "/static/style.css",
        "/static/docs.js",
        "/docs",
        "/openapi.json",
        "/favicon.ico",
    ):
        assert client.get(asset).status_code == 200, asset


def test_openapi_documents_the_multipart_fields(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = spec["components"]["schemas"][name]["properties"]
    assert {"image", "category", "text", "k", "filter", "attention"} <= set(fields)
    assert fields["k"]["maximum"] == 100 and fields["attention"]["type"] == "boolean"
    assert "/products/{product_id}" in spec["paths"]


def test_add_then_find_then_delete(client, admin, png):
    image = png((3, 250, 3), (30, 30))
    r = client.post(
        "/products",
        headers=admin,
        files={"image": ("n.png", image)},
        data={
            "id": "new-1",
            "category": "bags",
            "title": "Green tote",
            "metadata": json.dumps({"brand": "acme"}),
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["category"] == "Bags" and r.json()["brand"] == "acme"
    assert r.json()["products"] == 21
    # the stored upload is served back, and the product is found by its own image
    assert client.get("/products/new-1/image").content == image
    found = search(client, image, category="Bags", k="1").json()["results"][0]
    assert found["id"] == "new-1"
    # upsert replaces the metadata
    r = client.post(
        "/products",
        headers=admin,
        files={"image": ("n.png", image)},
        data={"id": "new-1", "title": "Renamed"},
    )
    assert r.status_code == 201 and client.get("/products/new-1").json()["title"] == "Renamed"
    r = client.delete("/products/new-1", headers=admin)
    assert r.status_code == 200 and r.json() == {"id": "new-1", "deleted": True, "products": 20}
    assert client.get("/products/new-1").status_code == 404


@pytest.mark.parametrize("pid", ["bags/tote 12", "ünïcode-ß", "a" * 256])
def test_unusual_but_valid_ids_round_trip(client, admin, png, pid):
    from urllib.parse import quote

    r = client.post("/products", headers=admin, files={"image": ("n.png", png())}, data={"id": pid})
    assert r.status_code == 201, r.text
    assert r.json()["image_url"] == f"/products/{quote(pid, safe='')}/image"
    assert client.get(r.json()["image_url"]).status_code == 200
    assert client.get(f"/products/{quote(pid, safe='')}").json()["id"] == pid
    assert client.delete(f"/products/{quote(pid, safe='')}", headers=admin).status_code == 200
