"""The Searcher from several threads: searches match sequential ones, writes interleave with
searches, and the one lock layer holds the index exclusively only for an index change (a new
product's forward, and a save, run while searches go on)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from referred.search import Searcher
from referred.search.locks import ReadWriteLock
from tests.search.test_searcher import CATS, catalog_index, photo, png


def test_concurrent_searches_match_sequential(searcher):
    jobs = [(photo(i % 4), CATS[i % 3] if i % 2 else None) for i in range(12)]
    sequential = [
        searcher.search(img, category=c, k=4, filter={"category": "Bags"}) for img, c in jobs
    ]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(
            pool.map(
                lambda j: searcher.search(j[0], category=j[1], k=4, filter={"category": "Bags"}),
                jobs,
            )
        )
    assert parallel == sequential


def test_searches_and_writes_from_many_threads(model):
    """Writers (with flat compactions) interleave with searches without errors or torn reads."""
    s = Searcher(model, catalog_index(model, 6))
    images = [png(50 + i) for i in range(8)]

    def write(i):
        s.upsert_product(f"w{i}", images[i], {"category": CATS[i % 3]})
        if i % 2:
            s.delete_product(f"w{i}")

    def read(i):
        return [h.id for h in s.search(images[i % 8], category="Feet", k=5)]

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(write if i % 3 == 0 else read, i % 8) for i in range(24)]
        results = [f.result() for f in futures]
    assert all(r is None or len(r) == 5 for r in results)
    # writers ran for j = 0, 3, 6, 1, 4, 7, 2, 5; the odd ones deleted their product again
    live = s.index._catalog.ids_of(np.flatnonzero(s.index._catalog.alive))
    assert {i for i in live if i.startswith("w")} == {"w0", "w2", "w4", "w6"}


def test_read_write_lock_excludes_writers():
    lock, events = ReadWriteLock(), []

    def reader(n):
        with lock.read():
            events.append(("r+", n))
            time.sleep(0.02)
            events.append(("r-", n))

    def writer():
        with lock.write():
            events.append(("w+", 0))
            time.sleep(0.02)
            events.append(("w-", 0))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    threads.insert(1, threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w = events.index(("w+", 0))
    assert events[w + 1] == ("w-", 0)  # nothing ran inside the write
    assert sum(1 for e in events if e[0] == "r+") == 3


def test_a_product_write_holds_the_index_only_for_the_index_change(model, monkeypatch):
    """The new product's forward runs outside the exclusive section: searches go on meanwhile,
    and the write lock is taken only once the vector exists."""
    s = Searcher(model, catalog_index(model, 6))
    in_forward, release, seen = threading.Event(), threading.Event(), {}
    forward = s._forward

    def slow_forward(pixels, conds):
        if all(c.kind == "none" for c in conds):  # the product's (unconditioned) forward
            seen["writing"] = s._rw._writing
            in_forward.set()
            assert release.wait(10)
        return forward(pixels, conds)

    monkeypatch.setattr(s, "_forward", slow_forward)
    writer = threading.Thread(target=s.upsert_product, args=("new", png(40), {"title": "t"}))
    writer.start()
    try:
        assert in_forward.wait(10)
        start = time.perf_counter()
        hits = s.search(png(1), category="Feet", k=3)  # answered while the write embeds
        assert len(hits) == 3 and time.perf_counter() - start < 5
        assert seen["writing"] is False and "new" not in {h.id for h in hits}
    finally:
        release.set()
        writer.join(10)
    assert s.product("new") == {"id": "new", "title": "t"}


def test_concurrent_saves_of_a_serving_index_all_succeed(model, tmp_path, monkeypatch):
    """POST /products with --persist saves after each write; saves from several writes at
    once must not collide on the directory they swap (slowed here so that they would)."""

    from referred.index import storage

    def slow_rename(src, dst):
        time.sleep(0.02)
        os.rename(src, dst)

    monkeypatch.setattr(storage, "_rename", slow_rename)
    s = Searcher(model, catalog_index(model, 6))
    target = tmp_path / "saved"

    def write_and_save(i):
        s.upsert_product(f"n{i}", png(60 + i), {"title": f"n{i}"})
        s.save_index(target)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write_and_save, range(8)))  # raises if any save failed
    assert len(Searcher.open(target, model)) == 14


def test_a_write_waiting_for_a_save_does_not_hold_searches_back(model, tmp_path, monkeypatch):
    """With --persist a save follows each write; a long save holds later writes back, never
    the searches (a writer queued on the readers-writer lock would block new readers)."""
    s = Searcher(model, catalog_index(model, 6))
    saving, release = threading.Event(), threading.Event()
    save = s.index.save

    def slow_save(path):
        saving.set()
        assert release.wait(10)
        save(path)

    monkeypatch.setattr(s.index, "save", slow_save)
    saver = threading.Thread(target=s.save_index, args=(tmp_path / "saved",))
    saver.start()
    assert saving.wait(10)
    writer = threading.Thread(target=s.upsert_product, args=("late", png(70)))
    writer.start()
    try:
        time.sleep(0.3)  # the writer has embedded its product and waits for the save
        start = time.perf_counter()
        assert len(s.search(png(2), category="Bags", k=3)) == 3
        assert time.perf_counter() - start < 5 and writer.is_alive()
    finally:
        release.set()
        saver.join(10)
        writer.join(10)
    assert s.product("late") == {"id": "late"}
