"""Feedback fields on POST /search: ids in three spellings, excluded ids gone, bad ids 4xx."""

from __future__ import annotations


def post(client, photo, data):
    return client.post("/search", files={"image": ("p.png", photo, "image/png")}, data=data)


def test_feedback_ids_reach_the_searcher_in_every_spelling(client, photo):
    fake = client.app.state.fake
    first = post(client, photo, {"category": "Bags", "k": 5}).json()["results"]
    ids = [r["id"] for r in first]
    r = post(
        client,
        photo,
        {
            "category": "Bags",
            "k": 5,
            "positive_ids": [ids[2], ids[3]],  # a repeated field
            "negative_ids": f"{ids[4]}",
            "exclude_ids": f'["{ids[0]}", "{ids[1]}"]',  # a JSON list
        },
    )
    assert r.status_code == 200, r.text
    assert fake.feedback[-1] == ([ids[2], ids[3]], [ids[4]], [ids[0], ids[1]])
    got = [x["id"] for x in r.json()["results"]]
    assert ids[0] not in got and ids[1] not in got and len(got) == 5
    r = post(client, photo, {"category": "Bags", "exclude_ids": f"{ids[0]}, {ids[1]}"})
    assert r.status_code == 200 and fake.feedback[-1][2] == [ids[0], ids[1]]


def test_bad_feedback_is_4xx_and_the_service_stays_up(client, photo):
    r = post(client, photo, {"category": "Bags", "positive_ids": "no-such-product"})
    assert r.status_code == 404 and "'no-such-product'" in r.json()["error"]["message"]
    r = post(client, photo, {"category": "Bags", "negative_ids": "[1, 2]"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_negative_ids"
    r = post(client, photo, {"category": "Bags", "exclude_ids": "[oops"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    assert post(client, photo, {"category": "Bags"}).status_code == 200


def test_the_schema_documents_the_feedback_fields(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    props = schema["components"]["schemas"][ref]["properties"]
    for name in ("positive_ids", "negative_ids", "exclude_ids"):
        assert props[name]["type"] == "array" and "JSON list" in props[name]["description"]


def test_excluded_categories_are_matched_and_never_returned(client, photo):
    r = post(client, photo, {"category": "Bags", "k": 10, "exclude_categories": "head, FEET"})
    assert r.status_code == 200, r.text
    cats = {x["category"] for x in r.json()["results"]}
    assert cats and not cats & {"Head", "Feet"} and len(r.json()["results"]) == 10
    r = post(client, photo, {"category": "Bags", "exclude_categories": "[Feet"})
    assert r.status_code == 400 and "'exclude_categories' is not valid JSON" in r.text
    r = post(client, photo, {"category": "Bags", "exclude_categories": "Socks"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_category"


def test_exclude_texts_in_every_spelling_drop_the_products_they_name(client, photo):
    every = post(client, photo, {"category": "Bags", "k": 20}).json()["results"]
    assert any(r["title"] == "product 3" for r in every)
    for spelling in ("product 3", '["Product 3"]'):
        r = post(client, photo, {"category": "Bags", "k": 20, "exclude_texts": spelling})
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["results"]] == [
            x["id"] for x in every if x["title"] != "product 3"
        ]
    assert client.app.state.fake.excluded_texts == ["Product 3"]
    r = post(client, photo, {"category": "Bags", "exclude_texts": '["black", 3]'})
    assert r.status_code == 422 and "exclude_texts" in r.json()["error"]["message"]
