"""Runtime behaviour: slow searches never block the event loop, micro-batching answers each
request with its own results, settings parse. (Unexpected errors: test_app_failures.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from referred.search.locks import ReadWriteLock
from referred.web.routes_deps import SearchRunner
from referred.web.settings import Settings


def _search(client, image, category="Bags"):
    return client.post(
        "/search", files={"image": ("q.png", image)}, data={"category": category, "k": "3"}
    )


@pytest.mark.parametrize("batching", ["micro", "threadpool"])
def test_a_slow_search_does_not_block_healthz(make_client, photo, batching):
    client = make_client(delay=1.5, batching=batching)
    result = {}
    slow = threading.Thread(target=lambda: result.setdefault("r", _search(client, photo)))
    slow.start()
    time.sleep(0.3)  # the search is now sleeping inside the Searcher
    start = time.perf_counter()
    health = client.get("/healthz")
    elapsed = time.perf_counter() - start
    assert health.status_code == 200
    assert elapsed < 0.5, f"/healthz took {elapsed:.2f} s while a search ran"
    assert slow.is_alive()
    slow.join(10)
    assert result["r"].status_code == 200


def test_micro_batching_gathers_requests_and_answers_each(make_client, png):
    client = make_client(delay=0.3, batching="micro")
    colours = [(i * 30, 255 - i * 25, (i * 70) % 256) for i in range(8)]
    images = [png(c, (20 + i, 20)) for i, c in enumerate(colours)]
    cats = ["Bags", "Feet", "Head", "Neck", "Bags", "Waist", "Hands", "Outwear"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda a: _search(client, *a), zip(images, cats)))
    sizes = [n for name, n in client.app.state.fake.calls if name == "search_many"]
    assert max(sizes) > 1, sizes  # some requests shared a forward
    fake = client.app.state.fake
    fake.delay = 0
    for image, cat, answer in zip(images, cats, answers):
        alone = _search(client, image, cat).json()["results"]
        got = answer.json()["results"]
        assert [x["id"] for x in got] == [x["id"] for x in alone]  # batching changed nothing
        assert [x["score"] for x in got] == pytest.approx([x["score"] for x in alone], abs=1e-5)


class _Picky:
    """search_many fails for the whole batch whenever any condition is 'boom'."""

    def search_many(self, images, conditions, *, k, filter):
        if any(c == {"category": "boom"} for c in conditions):
            raise ValueError("boom is not a category")
        return [[f"{img}-{c['category']}"] for img, c in zip(images, conditions)]


def test_one_bad_request_does_not_fail_its_batch():
    async def main():
        runner = SearchRunner(Settings(batching="micro", batch_wait_ms=20))
        await runner.start()
        searcher = _Picky()
        jobs = [
            runner.search(searcher, f"img{i}", category=c, text=None, k=1, filter=None)
            for i, c in enumerate(["a", "boom", "b"])
        ]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await runner.stop()
        return out

    a, boom, b = asyncio.run(main())
    assert a == ["img0-a"] and b == ["img2-b"]
    assert isinstance(boom, ValueError)


def test_rwlock_keeps_writers_apart_from_readers():
    lock, log = ReadWriteLock(), []

    def reader(i):
        with lock.read():
            log.append(("r+", i))
            time.sleep(0.05)
            log.append(("r-", i))

    def writer():
        with lock.write():
            log.append(("w+", 0))
            time.sleep(0.05)
            log.append(("w-", 0))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    threads.insert(1, threading.Thread(target=writer))
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    w = log.index(("w+", 0))
    assert log[w + 1] == ("w-", 0)  # nothing ran while the writer held the lock


def test_search_without_a_loaded_model_is_503(tmp_path):
    from fastapi.testclient import TestClient

    from referred.web.app import create_app

    with TestClient(create_app(Settings())) as client:
        r = client.get("/categories")
        assert r.status_code == 503 and "referred serve" in r.json()["error"]["message"]
        assert client.get("/healthz").json()["status"] == "no_model"


def test_the_text_limit_is_the_librarys_and_may_only_be_lowered():
    from referred.query import MAX_TEXT_CHARS

    assert Settings().max_text_chars == MAX_TEXT_CHARS
    assert Settings(max_text_chars=200).max_text_chars == 200
    with pytest.raises(ValueError, match=f"max_text_chars must be at most {MAX_TEXT_CHARS}"):
        Settings(max_text_chars=MAX_TEXT_CHARS + 1)


def test_settings_from_env():
    env = {
        "REFERRED_INDEX": "/data/idx",
        "REFERRED_MAX_K": "50",
        "REFERRED_PERSIST_WRITES": "yes",
        "REFERRED_ADMIN_TOKEN": "t" * 20,
        "REFERRED_BATCH_WAIT_MS": "1.5",
        "REFERRED_PORT": "",
    }
    s = Settings.from_env(env, port=9000, model_path=None)
    assert s.index_dir == Path("/data/idx") and s.max_k == 50 and s.persist_writes is True
    assert s.writes_enabled and s.batch_wait_ms == 1.5 and s.port == 9000
    assert s.model_path is None and "t" * 20 not in repr(s)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"REFERRED_MAX_K": "many"}, "REFERRED_MAX_K"),
        ({"REFERRED_PERSIST_WRITES": "maybe"}, "bool"),
        ({"REFERRED_BATCHING": "gpu"}, "batching"),
        ({"REFERRED_DEFAULT_K": "500"}, "default_k"),
        ({"REFERRED_MAX_UPLOAD_BYTES": "0"}, "max_upload_bytes"),
    ],
)
def test_bad_settings_are_named(env, words):
    with pytest.raises(ValueError, match=words):
        Settings.from_env(env)


def test_a_product_write_does_not_stall_searches(make_client, photo, admin, png):
    """While a POST /products computes its forward, searches and reads are answered: the only
    exclusive section is the index change, after the forward (one lock layer, the Searcher's)."""
    client = make_client()
    fake = client.app.state.fake
    embedding, release = threading.Event(), threading.Event()
    upsert = fake.upsert_product

    def slow_upsert(*args, **kwargs):  # a long forward, before the index lock (as the real one)
        embedding.set()
        assert release.wait(10)
        return upsert(*args, **kwargs)

    fake.upsert_product = slow_upsert
    answer = {}

    def write():
        answer["r"] = client.post(
            "/products", headers=admin, files={"image": ("n.png", png())}, data={"id": "new-9"}
        )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert embedding.wait(10), "the write never reached its forward"
        start = time.perf_counter()
        assert _search(client, photo).status_code == 200
        assert client.get("/products/p001").status_code == 200
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"a search waited {elapsed:.1f} s behind a product write"
        assert client.get("/products/new-9").status_code == 404  # not in yet
    finally:
        release.set()
        writer.join(10)
    assert answer["r"].status_code == 201, answer["r"].text
    assert client.get("/products/new-9").status_code == 200
