"""``like`` on POST /search ("the same bag, but in red"): a catalog product instead of a photo,
through the Searcher's own ``like=`` path; bad ids, texts and field mixes → 4xx naming what is
accepted; the OpenAPI schema says a search takes a photo or ``like``."""

from __future__ import annotations

import pytest


def like(client, **fields):
    return client.post("/search", data=fields, files={"_": ("", b"")})


def test_like_with_modify_reaches_the_searcher(client):
    fake = client.app.state.fake
    fake.composes = True
    plain = like(client, like="p003", k=20)
    assert plain.status_code == 200, plain.text
    r = like(client, like="p003", modify="but in red", k=20)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["like"] == "p003" and body["modify"] == "but in red"
    assert fake.liked == ("p003", "but in red")  # Searcher.search(None, like=, modify=)
    assert body["condition"] == {"category": None, "text": None} and body["presence"] is None
    ids = [x["id"] for x in body["results"]]
    assert "p003" not in ids and len(ids) == 19  # the product itself is never returned
    assert ids != [x["id"] for x in plain.json()["results"]]  # the modification moved them
    assert plain.json()["modify"] is None and plain.json()["like"] == "p003"


def test_like_takes_feedback_and_filters(client):
    fake = client.app.state.fake
    r = like(client, like="p003", exclude_ids="p001,p002", k=5, filter='{"category": "Bags"}')
    assert r.status_code == 200, r.text
    assert fake.feedback[-1][2] == ["p001", "p002"]
    assert {x["category"] for x in r.json()["results"]} <= {"Bags"}


def test_a_photo_search_echoes_no_like(client, photo):
    r = client.post("/search", files={"image": ("p.png", photo, "image/png")},
                    data={"category": "Bags"})  # fmt: skip
    assert r.status_code == 200 and r.json()["like"] is None


@pytest.mark.parametrize(
    ("fields", "status", "code", "message"),
    [
        ({"like": "nope"}, 404, "unknown_product",
         "unknown product id 'nope': it is not in the index"),
        ({"like": "x" * 257}, 422, "invalid_product_id", "a product id has 1 to 256 characters"),
        ({"like": "p003", "modify": "in red"}, 422, "unsupported_condition",
         "this model has no Combiner"),
        ({"like": "p003", "category": "Bags"}, 422, "like_with_photo",
         "send it without category"),
        ({"like": "p003", "text": "a bag", "box": "0,0,1,1", "attention": "true"}, 422,
         "like_with_photo", "send it without text, box, attention"),
        ({"category": "Bags"}, 422, "missing_image",
         "attach the photo as a file (JPEG, PNG, WebP, GIF, BMP or TIFF), or send "
         "like=<product id>"),
    ],
)  # fmt: skip
def test_bad_like_requests_are_4xx_naming_what_is_accepted(client, fields, status, code, message):
    r = like(client, **fields)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and message in error["message"], error


def test_like_with_a_photo_is_refused(client, photo):
    r = client.post("/search", files={"image": ("p.png", photo, "image/png")},
                    data={"like": "p003"})  # fmt: skip
    assert r.status_code == 422 and "send it without image" in r.json()["error"]["message"]


def test_like_modify_text_rules(client):
    client.app.state.fake.composes = True
    r = like(client, like="p003", modify="   ")
    assert r.status_code == 422 and "modify is empty" in r.json()["error"]["message"]
    r = like(client, like="p003", modify="x" * 301)
    assert r.status_code == 422 and "at most 300" in r.json()["error"]["message"]
    r = like(client, like="p003", modify="")  # an empty form field: not given
    assert r.status_code == 200 and r.json()["modify"] is None
    r = like(client, like="nope", modify="in red")
    assert r.status_code == 404 and "unknown product id 'nope'" in r.json()["error"]["message"]


def test_the_schema_documents_like(client):
    from referred.web.routes_products import MAX_ID_CHARS

    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/search"]["post"]
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    body = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    field = body["properties"]["like"]
    assert field["type"] == "string" and field["maxLength"] == MAX_ID_CHARS
    assert "catalog product" in field["description"] and "modify" in field["description"]
    assert "required" not in body  # a photo or like: see oneOf
    assert body["oneOf"][0] == {"required": ["image"]}
    assert body["oneOf"][-1]["required"] == ["like"]
    refused = {r["required"][0] for r in body["oneOf"][-1]["not"]["anyOf"]}
    assert refused == {"image", "more_images", "category", "text", "box"}
    assert "unless `like`" in body["properties"]["image"]["description"]
    assert "404" in op["responses"]
    answer = spec["components"]["schemas"]["SearchResponse"]["properties"]
    assert "like" in answer


def test_the_served_model_completes_the_photo_branch(client):
    from referred.web.openapi import complete
    from referred.web.settings import Settings

    spec = client.app.openapi()
    ref = spec["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    body = spec["components"]["schemas"][ref["schema"]["$ref"].rsplit("/", 1)[-1]]
    fake = client.app.state.fake
    complete(spec, Settings(), fake)  # category-only model
    assert body["oneOf"][0] == {"required": ["image", "category"]}
    assert len(body["oneOf"]) == 2
    fake.accepts_text = True
    complete(spec, Settings(), fake)
    assert body["oneOf"][:2] == [{"required": ["image", "category"]},
                                 {"required": ["image", "text"]}]  # fmt: skip
    assert body["oneOf"][2]["required"] == ["like"] and len(body["oneOf"]) == 3
