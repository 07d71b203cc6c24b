"""``box`` on /search, /shop-the-look and /attention: the searcher gets the crop; bad boxes 422."""

from __future__ import annotations

import pytest


def post(client, route, photo, **fields):
    return client.post(route, files={"image": ("p.png", photo, "image/png")}, data=fields)


def test_search_sends_the_crop_and_echoes_the_box(client, photo):
    fake = client.app.state.fake
    whole = post(client, "/search", photo, category="Bags")
    assert whole.status_code == 200 and whole.json()["box"] is None
    assert fake.sizes[-1] == (40, 30)
    r = post(client, "/search", photo, category="Bags", box="0,0,14,30")  # the green strip
    assert r.status_code == 200, r.text
    assert fake.sizes[-1] == (14, 30) and r.json()["box"] == "0,0,14,30"
    assert r.json()["results"] != whole.json()["results"]
    r = post(client, "/search", photo, category="Bags", box="0.5, 0, 1, 1", attention="true")
    assert r.status_code == 200 and fake.sizes[-2:] == [(20, 30), (20, 30)]
    assert r.json()["box"] == "0.5,0,1,1"


def test_shop_the_look_and_attention_take_the_box(client, photo):
    fake = client.app.state.fake
    r = post(client, "/shop-the-look", photo, categories="Bags,Feet", box="[0, 0, 0.5, 0.5]")
    assert r.status_code == 200, r.text
    assert r.json()["box"] == "0,0,0.5,0.5" and fake.sizes[-2:] == [(20, 15), (20, 15)]
    r = post(client, "/attention", photo, category="Bags", box="10,5,30,25")
    assert r.status_code == 200 and r.json()["box"] == "10,5,30,25"
    assert fake.sizes[-1] == (20, 20)


@pytest.mark.parametrize(
    "box, message",
    [
        ("1,2,3", "four numbers"),
        ("0.6,0,0.4,1", "empty or inverted"),
        ("0,0,41,30", "outside the 40x30 image"),
        ("0,0,2,30", "at least 4x4"),
        ("nan,0,1,1", "finite"),
    ],
)
@pytest.mark.parametrize("route", ["/search", "/shop-the-look", "/attention"])
def test_bad_boxes_are_422_naming_the_problem(client, photo, route, box, message):
    fields = {} if route == "/shop-the-look" else {"category": "Bags"}
    r = post(client, route, photo, box=box, **fields)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_box" and message in error["message"]
    assert post(client, route, photo, **fields).status_code == 200  # and it stays up


def test_the_schema_documents_the_box(client):
    schema = client.get("/openapi.json").json()
    for route in ("/search", "/shop-the-look", "/attention"):
        body = schema["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"]
        ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
        field = schema["components"]["schemas"][ref]["properties"]["box"]
        assert field["type"] == "string" and "fractions" in field["description"]
