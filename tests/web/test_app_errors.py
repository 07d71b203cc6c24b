"""Every bad input gets a 4xx JSON error naming the problem; unusual valid images are accepted.

The clients here re-raise server exceptions, so any input that crashed a route would fail the
test instead of becoming a 500.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from referred.categories import LRVSF_CATEGORIES


def _jpeg(size=(64, 64), mode="RGB", **save) -> bytes:
    img = Image.new("RGB", size, (120, 30, 200))
    img.paste((10, 200, 30), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.convert(mode).save(buf, format="JPEG", **save)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but carries no image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _bomb() -> bytes:
    """A real 8000x8000 (64 MP) 1-bit PNG of a few KB: over the 40 MP limit."""
    return _encode(Image.new("1", (8000, 8000), 0), "PNG", optimize=True)


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
BAD_IMAGES = {
    "zero_bytes": (b"", 422, "empty"),
    "text_file": (b"hello, I am not a picture\n" * 10, 415, "not a recognised image"),
    "truncated_jpeg": (_jpeg((256, 256))[:-900], 422, "truncated or corrupt"),
    "jpeg_header_only": (_jpeg()[:20], 415, "not a recognised image"),
    "svg": (SVG, 415, "SVG"),
    "svg_no_prolog": (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', 415, "SVG"),
    "ico": (_encode(Image.new("RGB", (16, 16)), "ICO"), 415, "ICO images are not accepted"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\n", 415, "not a recognised image"),
    "declared_bomb": (_png_header_only(20_000, 20_000), 413, "megapixels"),
    "real_bomb": (_bomb(), 413, "over the limit of 40 megapixels"),
    "huge_header": (_png_header_only(2**31 - 1, 2**31 - 1), 413, "megapixels"),
}


def _search(client, image=None, **fields):
    files = (
        {"note": ("n.txt", b"x")}
        if image is None
        else {"image": ("x.bin", image, "application/octet-stream")}
    )
    return client.post("/search", files=files, data=fields)


def _check_error(r, status: int, words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == status and err["code"] and err["request_id"]
    assert words.lower() in err["message"].lower(), err["message"]
    assert "object at 0x" not in err["message"] and "Traceback" not in err["message"]
    return err


@pytest.mark.parametrize("name", list(BAD_IMAGES))
@pytest.mark.parametrize("endpoint", ["/search", "/shop-the-look", "/attention"])
def test_bad_images(client, name, endpoint):
    data, status, words = BAD_IMAGES[name]
    fields = {} if endpoint == "/shop-the-look" else {"category": "Bags"}
    r = client.post(endpoint, files={"image": ("x.jpg", data, "image/jpeg")}, data=fields)
    _check_error(r, status, words)


def test_a_decompression_bomb_names_one_limit_once(client):
    r = client.post(
        "/search",
        files={"image": ("x.png", _png_header_only(20_000, 20_000))},
        data={"category": "Bags"},
    )
    err = _check_error(r, 413, "megapixels")
    assert err["message"] == (
        "image is 400.0 megapixels, over the limit of 40 megapixels (setting max_pixels)"
    )


@pytest.mark.parametrize("data", [b"\x00" * 64, b"GIF89a" + b"\x00" * 10, b"\xff\xd8\xff" * 3])
def test_unreadable_bytes_name_the_accepted_formats(client, data):
    r = client.post("/search", files={"image": ("x.jpg", data)}, data={"category": "Bags"})
    assert r.status_code in (415, 422)
    assert "JPEG, PNG, WebP, GIF, BMP or TIFF" in _check_error(r, r.status_code, "")["message"]


def test_missing_image(client):
    _check_error(_search(client, None, category="Bags"), 422, "missing form field 'image'")


def test_image_sent_as_text(client):
    r = client.post(
        "/search",
        data={"image": "not a file", "category": "Bags"},
        files={"dummy": ("d.txt", b"x")},
    )
    _check_error(r, 422, "must be a file")


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"category": "Socks"}, 422, ", ".join(LRVSF_CATEGORIES)),
        ({"category": "../../etc"}, 422, "unknown category"),
        ({}, 422, "say which item"),
        ({"category": "   "}, 422, "say which item"),
        ({"text": "the scarf"}, 422, "categories only"),
        ({"category": "Bags", "text": "a scarf"}, 422, "not both"),
        ({"category": "Bags", "k": "0"}, 422, "from 1 to 100, got '0'"),
        ({"category": "Bags", "k": "101"}, 422, "got '101'"),
        ({"category": "Bags", "k": "-3"}, 422, "k must"),
        ({"category": "Bags", "k": "ten"}, 422, "integer"),
        ({"category": "Bags", "k": "1.5"}, 422, "integer"),
        ({"category": "Bags", "k": "9" * 400}, 422, "integer from 1 to 100"),
        ({"category": "Bags", "filter": "{bad json"}, 400, "not valid JSON"),
        ({"category": "Bags", "filter": "[1, 2]"}, 422, "must be a JSON object"),
        ({"category": "Bags", "filter": '"Bags"'}, 422, "must be a JSON object"),
        ({"category": "Bags", "filter": '{"colour": "red"}'}, 422, "colour"),
        ({"category": "Bags", "filter": '{"category": {"$ne": 1}}'}, 422, "must be a string"),
        ({"category": "Bags", "filter": '{"price": "cheap"}'}, 422, "price"),
    ],
)
def test_bad_fields(client, photo, fields, status, words):
    _check_error(_search(client, photo, **fields), status, words)


@pytest.mark.parametrize(
    ("text", "words"),
    # an empty field is no field (as for 'category'); whitespace only is an empty text
    [("", "say which item"), ("   \n\t ", "empty"), ("\x00\x1b", "empty"), ("x" * 1001, "1000")],
)
def test_bad_text_on_a_text_model(make_client, photo, text, words):
    client = make_client(accepts_text=True)
    _check_error(_search(client, photo, text=text), 422, words)


def test_text_at_the_limit_is_fine(make_client, photo):
    client = make_client(accepts_text=True)
    assert _search(client, photo, text="y" * 1000).status_code == 200


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"categories": "Bags,Umbrellas"}, "Umbrellas"),
        ({"categories": "[1, 2]"}, "list"),
        ({"categories": "[oops"}, "not valid JSON"),
        ({"k": "1000"}, "k must"),
    ],
)
def test_bad_shop_the_look_fields(client, photo, fields, words):
    r = client.post("/shop-the-look", files={"image": ("q.png", photo)}, data=fields)
    assert r.status_code in (400, 422)
    _check_error(r, r.status_code, words)


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {"image": "abc", "category": "Bags"}}, 415, "got application/json"),
        (
            {
                "content": b"category=Bags",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "multipart/form-data",
        ),
        ({"content": b"raw bytes"}, 415, "multipart/form-data"),
        (
            {"content": b"--xyz\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            400,
            "malformed multipart",
        ),
        (
            {
                "content": b"\x00\x01garbage" * 50,
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "malformed multipart",
        ),
        (
            {
                "content": b"--xyz\r\nContent-Disposition: form-data\r\n\r\nv\r\n--xyz--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "malformed multipart",
        ),
    ],
)
def test_wrong_or_broken_bodies(client, kwargs, status, words):
    _check_error(client.post("/search", **kwargs), status, words)


def test_too_many_form_fields(client, photo):
    data = {f"f{i}": "x" for i in range(100)}
    _check_error(_search(client, photo, category="Bags", **data), 400, "too many fields")


def test_upload_over_the_byte_limit_is_refused_early(make_client, photo):
    client = make_client(max_upload_bytes=20_000)
    big = photo + b"\0" * 30_000
    _check_error(_search(client, big, category="Bags"), 413, "upload limit")


def test_chunked_upload_over_the_limit_is_cut_off(make_client):
    client = make_client(max_upload_bytes=20_000)
    sent = []

    def body():  # no Content-Length: counted as it streams
        head = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        yield head
        for _ in range(1000):  # would be 1 MB
            sent.append(1)
            yield b"\xff" * 1000

    r = client.post(
        "/search", content=body(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    _check_error(r, 413, "upload limit")


@pytest.mark.parametrize(
    "path",
    [
        "/products/../etc/passwd",
        "/products/..%2F..%2Fetc%2Fpasswd",
        "/products/%2e%2e%2f%2e%2e%2fetc%2fpasswd/image",
        "/products/..%252F..%252Fetc/image",
        "/products/%2Fetc%2Fpasswd/image",
        "/products/p001%2F..%2F..%2F..%2Fetc%2Fpasswd/image",
        "/products/nope",
        "/products/nope/image",
        "/products/C:%5Cwindows%5Cwin.ini/image",
    ],
)
def test_path_tricks_on_products(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.text)
    assert r.json()["error"]["code"] in ("unknown_product", "not_found")
    assert b"root:" not in r.content


@pytest.mark.parametrize(
    "path",
    ["/products/%00", "/products/p001%00/image", "/products/a%01b", "/products/" + "x" * 300],
)
def test_invalid_product_ids(client, path):
    _check_error(client.get(path), 422, "product id")


def test_newline_in_a_product_id_matches_no_route(client):
    _check_error(client.get("/products/a%0Ab"), 404, "no such endpoint")


@pytest.mark.parametrize(
    "value",
    [
        "../../../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        "link-out.png",
        "p001.png\x00.txt",
        "sub/../../outside.png",
    ],
)
def test_metadata_image_paths_never_leave_the_root(client, catalog_dir, value):
    outside = catalog_dir.parent / "outside.png"
    outside.write_bytes(b"secret")
    (catalog_dir / "link-out.png").symlink_to(outside)
    index = client.app.state.fake.index
    vec = index.get(["p001"]).vectors
    index.upsert(["evil"], vec, [{"category": "Bags", "title": "x", "image": value}])
    r = client.get("/products/evil/image")
    assert r.status_code == 404 and b"secret" not in r.content and b"root:" not in r.content


def test_unknown_route_and_method(client):
    _check_error(client.get("/nope"), 404, "no such endpoint")
    _check_error(client.get("/search"), 405, "not allowed")
    _check_error(client.put("/products/p001"), 405, "not allowed")


VALID = {
    "grayscale": lambda: _encode(Image.new("L", (40, 30), 128), "PNG"),
    "palette": lambda: _encode(Image.new("RGB", (40, 30), (9, 90, 200)).convert("P"), "PNG"),
    "rgba": lambda: _encode(Image.new("RGBA", (40, 30), (9, 90, 200, 100)), "PNG"),
    "la": lambda: _encode(Image.new("LA", (40, 30), (9, 100)), "PNG"),
    "cmyk_jpeg": lambda: _jpeg(mode="CMYK"),
    "progressive_jpeg": lambda: _jpeg(progressive=True),
    "png_16bit": lambda: _encode(Image.new("I;16", (40, 30), 40000), "PNG"),
    "gif": lambda: _encode(Image.new("RGB", (40, 30), (200, 0, 0)).convert("P"), "GIF"),
    "animated_gif": lambda: _encode(
        Image.new("P", (20, 20), 1),
        "GIF",
        save_all=True,
        append_images=[Image.new("P", (20, 20), 2)],
        duration=50,
    ),
    "webp": lambda: _encode(Image.new("RGB", (40, 30), (0, 200, 0)), "WEBP"),
    "bmp": lambda: _encode(Image.new("RGB", (40, 30), (0, 0, 200)), "BMP"),
    "tiff": lambda: _encode(Image.new("RGB", (40, 30), (0, 200, 200)), "TIFF"),
    "one_pixel": lambda: _encode(Image.new("RGB", (1, 1), (5, 5, 5)), "PNG"),
    "very_wide": lambda: _jpeg(size=(4000, 3)),
    "very_tall": lambda: _encode(Image.new("RGB", (2, 3000), (5, 5, 5)), "PNG"),
    "exif_rotated": lambda: _exif_rotated(),
    "at_pixel_limit": lambda: _encode(Image.new("1", (8000, 5000), 1), "PNG"),
}


def _exif_rotated() -> bytes:
    img = Image.new("RGB", (40, 20), (50, 60, 70))
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90
    return _encode(img, "JPEG", exif=exif.tobytes())


@pytest.mark.parametrize("name", list(VALID))
def test_unusual_but_valid_images_are_accepted(client, name):
    r = _search(client, VALID[name](), category="Feet", k="3")
    assert r.status_code == 200, (name, r.text)
    assert len(r.json()["results"]) == 3


def test_every_error_is_json_with_a_request_id(client):
    r = client.get("/products/nope", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["error"]["request_id"] == "abc-123"
    r = client.get("/products/nope", headers={"X-Request-ID": "bad id\twith\ttabs"})
    assert r.headers["x-request-id"] != "bad id\twith\ttabs"
    assert json.loads(r.text)["error"]["request_id"] == r.headers["x-request-id"]
