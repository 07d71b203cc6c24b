"""``referred serve --workers 2`` on one catalog in a real Milvus server: a product added
through one worker process is found by searches through the other within 1 s, and a delete
through the second is seen by the first as fast.

Each HTTP connection stays with the worker that accepted it (``/healthz`` names that worker's
process), so the test opens connections until it holds one to each worker.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

import referred
from referred.catalog import build_catalog_index
from tests.catalog.test_catalog_build import write_catalog
from tests.milvus_fixture import new_collection_name
from tests.search.test_searcher import CATS

pytestmark = pytest.mark.milvus
TOKEN = "t" * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_by_two_workers(milvus_server, tmp_path):
    model = referred.create_model("tiny", categories=CATS, seed=0)
    model.save_pretrained(tmp_path / "m")
    write_catalog(tmp_path / "cat.parquet", n=12)
    build_catalog_index(
        model,
        tmp_path / "idx",
        source=tmp_path / "cat.parquet",
        spec=f"milvus:{milvus_server.uri}",
        index_options={"collection": new_collection_name("served")},
        model_ref=str(tmp_path / "m"),
        progress=False,
    )
    (tmp_path / "token").write_text(TOKEN)
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "referred", "serve", "--index", str(tmp_path / "idx")]
    cmd += ["--workers", "2", "--port", str(port), "--uploads", str(tmp_path / "up")]
    cmd += ["--admin-token-file", str(tmp_path / "token")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REFERRED_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield f"http://127.0.0.1:{port}", proc, tmp_path / "serve.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _one_client_per_worker(url: str, proc, log_path, timeout: float = 180) -> list[httpx.Client]:
    """Two keep-alive clients, each answered by a different worker process."""
    deadline = time.monotonic() + timeout
    by_worker: dict[int, httpx.Client] = {}
    while len(by_worker) < 2:
        assert proc.poll() is None, f"serve exited:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no two workers:\n{log_path.read_text()[-3000:]}"
        client = httpx.Client(base_url=url, timeout=30)
        try:
            health = client.get("/healthz").json()
        except httpx.TransportError:
            client.close()
            time.sleep(0.5)
            continue
        if health["status"] == "ok" and health["worker"] not in by_worker:
            by_worker[health["worker"]] = client
        else:
            client.close()
    return list(by_worker.values())


def _png(color) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (40, 40), color)
    img.paste((255 - color[0], 30, color[2]), (5, 8, 30, 33))
    img.save(buf, format="PNG")
    return buf.getvalue()


def _found(client: httpx.Client, image: bytes, filter: dict | None = None) -> list[str]:
    data = {"category": "Bags", "k": "20"}
    if filter:
        data["filter"] = json.dumps(filter)
    r = client.post("/search", files={"image": ("q.png", image)}, data=data)
    assert r.status_code == 200, r.text
    return [hit["id"] for hit in r.json()["results"]]


def _seconds_until(predicate, limit: float = 10.0) -> float:
    t0 = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - t0 < limit, "not seen within the time limit"
    return time.perf_counter() - t0


def test_a_product_added_through_one_worker_is_found_through_the_other(served_by_two_workers):
    url, proc, log_path = served_by_two_workers
    a, b = _one_client_per_worker(url, proc, log_path)
    pid_a, pid_b = (c.get("/healthz").json()["worker"] for c in (a, b))
    assert pid_a != pid_b
    image = _png((200, 40, 90))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert len(_found(b, image)) == 12 and "new-1" not in _found(b, image)
    r = a.post(
        "/products",
        headers=auth,
        files={"image": ("p.png", image)},
        data={"id": "new-1", "title": "a new bag", "metadata": json.dumps({"colour": "red"})},
    )
    assert r.status_code == 201, r.text
    seen_in = _seconds_until(lambda: "new-1" in _found(b, image))
    assert b.get("/products/new-1").json()["title"] == "a new bag"
    # a field that only the other worker has written yet is known to this one's filters
    assert _found(b, image, {"colour": "red"}) == ["new-1"]
    r = b.delete("/products/new-1", headers=auth)
    assert r.status_code == 200, r.text
    gone_in = _seconds_until(lambda: "new-1" not in _found(a, image))
    assert a.get("/products/new-1").status_code == 404
    # the connections stayed with their workers throughout
    assert [c.get("/healthz").json()["worker"] for c in (a, b)] == [pid_a, pid_b]
    print(f"added: seen through the other worker in {seen_in:.3f} s; deleted: {gone_in:.3f} s")
    assert seen_in < 1.0 and gone_in < 1.0, (seen_in, gone_in)
    for c in (a, b):
        c.close()
