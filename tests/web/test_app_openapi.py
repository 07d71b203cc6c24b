"""The OpenAPI schema tells the truth: every status and content type a request can get is
declared for its operation, errors have one body model, images are documented as images."""

from __future__ import annotations

import json
import re

import pytest

from referred.categories import LRVSF_CATEGORIES


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json()


def _operation(spec: dict, method: str, path: str) -> dict:
    """The schema operation a concrete request path belongs to (a product id never ends in
    "/image", so such a path is the image's)."""
    for template, item in spec["paths"].items():
        literal = [re.escape(part) for part in re.split(r"\{[^}]+\}", template)]
        if re.fullmatch(".+".join(literal), path) and method in item:
            if template == "/products/{product_id}" and path.endswith("/image"):
                continue
            return item[method]
    raise AssertionError(f"no operation for {method} {path}")


def _body(spec: dict, op: dict) -> dict:
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_errors_have_one_declared_body(spec):
    assert "HTTPValidationError" not in json.dumps(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            codes = {int(c) for c in op["responses"]}
            assert 500 in codes, (method, path)
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    content = response["content"]
                    assert list(content) == ["application/json"], (method, path, code)
                    ref = content["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, code)


def test_images_are_documented_as_images(spec):
    for path in ("/products/{product_id}/image", "/samples/{name}"):
        ok = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert "application/json" not in ok
        assert {"image/jpeg", "image/png", "image/webp"} <= set(ok)
    assert "307" in spec["paths"]["/products/{product_id}/image"]["get"]["responses"]


def test_form_fields_are_typed_and_limited(spec):
    search = _body(spec, spec["paths"]["/search"]["post"])
    fields = search["properties"]
    assert "required" not in search  # a photo, or like=<product id> instead (oneOf)
    assert search["oneOf"][0] == {"required": ["image"]}
    assert fields["image"]["contentMediaType"] == "application/octet-stream"
    assert fields["k"] == {**fields["k"], "type": "integer", "minimum": 1, "maximum": 100}
    assert fields["attention"]["type"] == "boolean"
    assert fields["filter"]["contentMediaType"] == "application/json"
    assert all("null" not in json.dumps(f) for f in fields.values())  # absent, not null
    encoding = spec["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "image/png" in encoding["encoding"]["image"]["contentType"]
    look = _body(spec, spec["paths"]["/shop-the-look"]["post"])["properties"]
    assert look["categories"]["type"] == "array" and look["categories"]["maxItems"] == 20
    assert look["k"]["default"] == 5
    add = spec["paths"]["/products"]["post"]
    assert set(_body(spec, add)["required"]) == {"image", "id"}
    assert add["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_id_pattern_keeps_ids_off_the_image_path(spec):
    param = spec["paths"]["/products/{product_id}"]["delete"]["parameters"][0]["schema"]
    pattern = re.compile(param["pattern"])
    assert pattern.search("bags/tote 12") and pattern.search("ünïcode-ß")
    assert not pattern.search("0/image") and not pattern.search("a\x01b")
    assert param["maxLength"] == 256


def _requests(png, photo, admin):
    image = {"image": ("q.png", photo, "image/png")}
    return [
        ("post", "/search", {"files": image, "data": {"category": "Bags"}}),
        ("post", "/search", {"files": image, "data": {"category": "Socks"}}),
        ("post", "/search", {"files": image, "data": {"category": "Bags", "filter": "{x"}}),
        ("post", "/search", {"json": {"category": "Bags"}}),
        (
            "post",
            "/search",
            {"files": {"image": ("x.svg", b"<svg/>")}, "data": {"category": "Bags"}},
        ),
        ("post", "/search", {"files": image, "data": {"category": "Bags", "k": "x" * 70_000}}),
        ("post", "/shop-the-look", {"files": image}),
        ("post", "/attention", {"files": image, "data": {"text": "a bag"}}),
        ("get", "/products/p001", {}),
        ("get", "/products/nope", {}),
        ("get", "/products/a%01b", {}),
        ("get", "/products/p001/image", {}),
        ("get", "/products/remote/image", {"follow_redirects": False}),
        ("get", "/samples/scene-1.png", {}),
        ("get", "/samples/nope.png", {}),
        ("get", "/categories", {}),
        ("get", "/healthz", {}),
        ("post", "/products", {"files": {"image": ("n.png", png())}, "data": {"id": "n1"}}),
        (
            "post",
            "/products",
            {"headers": admin, "files": {"image": ("n.png", png())}, "data": {"id": "n1"}},
        ),
        (
            "post",
            "/products",
            {"headers": admin, "files": {"image": ("n.png", png())}, "data": {"id": "n1/image"}},
        ),
        ("delete", "/products/n1", {"headers": admin}),
        ("delete", "/products/n1", {"headers": admin}),
        ("delete", "/products/n1", {}),
    ]


def test_every_answer_is_declared_for_its_operation(make_client, png, photo, admin):
    client = make_client(max_upload_bytes=64_000)
    index = client.app.state.fake.index
    index.upsert(["remote"], index.get(["p001"]).vectors, [{"image": "https://x.example/1.jpg"}])
    spec = client.get("/openapi.json").json()
    seen = set()
    for method, path, kwargs in _requests(png, photo, admin):
        r = client.request(method.upper(), path, **kwargs)
        op = _operation(spec, method, path.split("?")[0])
        declared = op["responses"].get(str(r.status_code))
        assert declared is not None, (method, path, r.status_code, list(op["responses"]))
        ctype = r.headers.get("content-type", "").split(";")[0]
        if ctype:
            assert ctype in declared.get("content", {}), (method, path, r.status_code, ctype)
        seen.add(r.status_code)
    assert {200, 201, 307, 400, 401, 404, 413, 415, 422} <= seen
    closed = make_client(admin_token="")
    r = closed.delete("/products/p001", headers=admin)
    assert (
        r.status_code == 403 and "403" in _operation(spec, "delete", "/products/p001")["responses"]
    )


def test_categories_and_one_condition_come_from_the_served_model(client):
    from referred.web.openapi import complete
    from referred.web.settings import Settings

    spec = client.app.openapi()
    body = _body(spec, spec["paths"]["/search"]["post"])
    # no Searcher loaded in the app state: no condition assumed (a photo, or like instead)
    assert [o["required"] for o in body["oneOf"]] == [["image"], ["like"]]
    fake = client.app.state.fake
    complete(spec, Settings(max_k=50), fake)
    assert body["properties"]["category"]["enum"] == list(LRVSF_CATEGORIES)
    assert body["properties"]["k"]["maximum"] == 50
    assert "text" not in body["properties"]  # no text model
    assert body["oneOf"][0] == {"required": ["image", "category"]}  # with a photo (or like)
    attention = _body(spec, spec["paths"]["/attention"]["post"])
    assert "category" in attention["required"]
    fake.accepts_text = True
    complete(spec, Settings(), fake)
    assert attention["oneOf"] == [{"required": ["category"]}, {"required": ["text"]}]


def test_disabled_writes_are_documented_as_such(make_client, png):
    client = make_client(admin_token="")
    spec = client.get("/openapi.json").json()
    for method, path in (("post", "/products"), ("delete", "/products/{product_id}")):
        op = spec["paths"][path][method]
        assert op["security"] == [{}] and "403" in op["responses"]
        assert "Disabled on this server" in op["description"]
    r = client.post("/products", files={"image": ("n.png", png())}, data={"id": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "writes_disabled"
