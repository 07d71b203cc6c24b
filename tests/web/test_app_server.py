"""Against a real uvicorn server on 127.0.0.1: an upload far over the limit gets a readable 413
(the server reads and drops the rest of the body before answering, so the client, still
sending, is not reset), HEAD/OPTIONS over the wire, and the server keeps answering.

The reset is timing-dependent for clients that read while they send (httpx, curl); a client
that pauses mid-upload and reads only once it has sent everything shows it every time: a
server that answers and closes early makes the kernel reset the connection at the next bytes,
discarding the 413 already received. ``test_a_slow_uploader_...`` is that client.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from referred.web.app import create_app
from referred.web.routes_deps import Catalog, get_catalog, get_searcher
from referred.web.settings import Settings
from tests.web.conftest import FakeSearcher, make_catalog, serving

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    model, index = make_catalog(root / "images")
    app = create_app(Settings(image_root=root / "images", max_upload_bytes=2 * MB))
    searcher = FakeSearcher(model, index)
    app.dependency_overrides[get_searcher] = lambda: searcher
    app.dependency_overrides[get_catalog] = lambda: Catalog(searcher)
    with serving(app, start_timeout=20) as url:
        yield url


def _multipart() -> tuple[bytes, bytes]:
    head = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )
    return head, b"\r\n--b--\r\n"


def _check_413(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text[:300]
    err = r.json()["error"]
    assert err["code"] == "payload_too_large" and "upload limit of 2.0 MiB" in err["message"]
    assert err["request_id"] == r.headers["x-request-id"]


def test_an_80_mb_upload_gets_a_readable_413(server):
    head, tail = _multipart()
    body = head + b"\xff" * (80 * MB) + tail
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post(
            "/search", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        _check_413(r)
        assert "80.0 MiB" in r.json()["error"]["message"]
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # and the server goes on


def test_a_chunked_80_mb_upload_gets_a_readable_413(server):
    head, tail = _multipart()

    def chunks():  # no Content-Length: counted as it streams
        yield head
        for _ in range(80):
            yield b"\xff" * MB
        yield tail

    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post(
            "/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        _check_413(r)


def test_head_and_options_over_the_wire(server):
    with httpx.Client(base_url=server, timeout=10) as client:
        got, head = client.get("/products/p001/image"), client.head("/products/p001/image")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        r = client.options("/products/p001")
        assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, DELETE, OPTIONS"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_slow_uploader_of_80_mb_reads_the_413_without_a_reset(server, chunked):
    port = server.rsplit(":", 1)[1]
    head, tail = _multipart()
    size = len(head) + 80 * MB + len(tail)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size

    def frame(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n" + framing + b"\r\n\r\n"
        )
        sock.sendall(frame(head + b"\xff" * (3 * MB)))  # over the 2 MiB limit already
        time.sleep(0.5)  # the server has decided by now
        for _ in range(77):
            sock.sendall(frame(b"\xff" * MB))
        sock.sendall(frame(tail) + (b"0\r\n\r\n" if chunked else b""))
        answer = b""
        while chunk := sock.recv(65536):  # ConnectionResetError here without the drain
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "payload_too_large"
