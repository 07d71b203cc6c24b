"""Several photos of one item on POST /search: their mean query, a clear 422 past the limit."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from referred.search.searcher import MAX_QUERY_IMAGES
from tests.web.conftest import png_bytes


def half_dark(side: str) -> bytes:
    img = Image.new("RGB", (32, 32), (230, 230, 230))
    ImageDraw.Draw(img).rectangle((0, 0, 15, 31) if side == "left" else (0, 0, 31, 15), fill=0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def post(client, files, data=None):
    return client.post("/search", files=files, data=data or {"category": "Bags", "k": 5})


def test_more_images_are_searched_together_with_the_image(client):
    fake = client.app.state.fake
    a, b = half_dark("left"), half_dark("top")
    alone = post(client, {"image": ("a.png", a, "image/png")})
    assert alone.status_code == 200, alone.text
    both = post(
        client,
        [("image", ("a.png", a, "image/png")), ("more_images", ("b.png", b, "image/png"))],
    )
    assert both.status_code == 200, both.text
    assert fake.photos == 2
    scores = [r["score"] for r in both.json()["results"]]
    assert scores != [r["score"] for r in alone.json()["results"]]  # another query vector


def test_more_images_than_the_limit_is_422_naming_it(client):
    photo = png_bytes()
    files = [("image", ("a.png", photo, "image/png"))]
    files += [("more_images", (f"{i}.png", photo, "image/png")) for i in range(MAX_QUERY_IMAGES)]
    r = post(client, files)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "too_many_images" and str(MAX_QUERY_IMAGES) in err["message"]
    assert post(client, {"image": ("a.png", photo, "image/png")}).status_code == 200


def test_a_bad_extra_photo_is_4xx_naming_the_field(client):
    files = [
        ("image", ("a.png", png_bytes(), "image/png")),
        ("more_images", ("b.png", b"", "image/png")),
    ]
    r = post(client, files)
    assert r.status_code == 422 and "'more_images'" in r.json()["error"]["message"]
    files[1] = ("more_images", ("b.txt", b"not an image", "text/plain"))
    assert post(client, files).status_code == 415


def test_the_schema_documents_more_images(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    prop = schema["components"]["schemas"][ref]["properties"]["more_images"]
    assert "same item" in prop["description"] and str(MAX_QUERY_IMAGES) in prop["description"]
