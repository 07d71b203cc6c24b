"""A fast stand-in for the model and Searcher, a tiny on-disk catalog, and app fixtures.

``FakeSearcher`` implements the Searcher interface on a real ``flat`` index with 16-d vectors
made from the pixels (no torch), so adding and deleting products through the API changes what
search returns, exactly as with the real thing. It is swapped in with
``app.dependency_overrides``.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from referred.categories import LRVSF_CATEGORIES
from referred.feedback import mentions
from referred.imageio import open_image
from referred.index import UnknownIdError, create_index
from referred.search.errors import (
    QueryError,
    UnknownCategoryError,
    UnknownProductError,
    UnsupportedConditionError,
)
from referred.search.locks import ReadWriteLock
from referred.web.app import create_app
from referred.web.routes_deps import Catalog, get_catalog, get_searcher
from referred.web.settings import Settings

TOKEN = "s3cret-admin-token"
DIM = 16


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    metadata: dict[str, Any]
    weak: bool = False


class FakeModel:
    """``encode_targets``: 4x4 grey thumbnail + channel means → L2-normalised (n, 16)."""

    def encode_targets(self, images: list[Any], batch_size: int = 32) -> np.ndarray:
        rows = []
        for img in images:
            rgb = open_image(img)
            grey = np.asarray(rgb.convert("L").resize((4, 4)), dtype=np.float32).ravel()
            v = grey / 255.0 + 0.01
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)  # (n, 16)


class FakeSearcher:
    """The Searcher interface over a flat index; conditions shift the query deterministically."""

    def __init__(
        self,
        model: FakeModel,
        index: Any,
        *,
        accepts_text: bool = False,
        delay: float = 0.0,
        presence: dict[str, float] | None = None,
    ) -> None:
        self.model, self.index = model, index
        #: category → probability the fake's presence head answers (None: no head)
        self.presence_probs = presence
        self.composes = False  # whether the fake has a Combiner (modify=)
        self.score_floor: float | None = None  # hits under it are weak, as the Searcher's
        self.categories: tuple[str, ...] = LRVSF_CATEGORIES
        self.category_choices = self.categories
        self.accepts_text = accepts_text
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.sizes: list[tuple[int, int] | None] = []  # (w, h) of each query image received
        self.feedback: list[tuple[list, list, list]] = []  # (positive, negative, excluded) ids
        self._lock = threading.Lock()
        self.rw = ReadWriteLock()  # like the real Searcher: the only lock layer

    def _record(self, name: str, n: int) -> None:
        with self._lock:
            self.calls.append((name, n))

    def _query(self, image: Any, condition: dict[str, str] | None) -> np.ndarray:
        self.sizes.append(getattr(image, "size", None))
        v = self.model.encode_targets([image])[0]
        if condition is None:
            return v
        if set(condition) - {"category", "text"}:
            raise QueryError(f"bad condition {condition!r}")
        if "category" in condition:
            if condition["category"] not in self.categories:
                raise UnknownCategoryError(condition["category"], self.categories)
            shift = self.categories.index(condition["category"])
        elif self.accepts_text:
            shift = len(condition["text"]) % DIM
        else:
            raise UnsupportedConditionError("this model does not accept text")
        return np.roll(v, shift)

    def search_many(
        self,
        images: list[Any],
        conditions: list[dict | None],
        *,
        k: int = 10,
        filter: dict | None = None,
    ) -> list[list[Hit]]:
        self._record("search_many", len(images))
        if self.delay:
            time.sleep(self.delay)
        queries = np.stack([self._query(i, c) for i, c in zip(images, conditions)])  # (n, 16)
        with self.rw.read():
            return self._hits(*self.index.search(queries, k, filter=filter))

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[list[Hit]]:
        out = []
        for row_s, row_i in zip(scores, ids):
            keep = [(s, i) for s, i in zip(row_s, row_i) if i]
            metas = self.index.get([i for _, i in keep], vectors=False).metadata if keep else []
            out.append(
                [
                    Hit(
                        i,
                        float(s),
                        {k2: v for k2, v in m.items() if k2 != "id"},
                        weak=self.score_floor is not None and s < self.score_floor,
                    )
                    for (s, i), m in zip(keep, metas)
                ]
            )
        return out

    def upsert_product(self, product_id: str, image: Any, metadata: Any = None) -> None:
        vector = self.model.encode_targets([image])  # (1, 16), outside the lock as the real one
        with self.rw.write():
            self.index.upsert([product_id], vector, None if metadata is None else [dict(metadata)])

    def delete_product(self, product_id: str) -> None:
        try:
            with self.rw.write():
                self.index.delete([product_id])
        except UnknownIdError:
            raise UnknownProductError(product_id) from None

    def __len__(self) -> int:
        return len(self.index)

    def save_index(self, path: Any) -> None:
        self.index.save(path)

    def search(
        self,
        image: Any,
        *,
        category: str | None = None,
        text: str | None = None,
        k: int = 10,
        filter: dict | None = None,
        positive_ids: Any = (),
        negative_ids: Any = (),
        exclude_ids: Any = (),
        exclude_categories: Any = (),
        exclude_texts: Any = (),
        modify: Any = None,
        like: Any = None,
    ) -> list[Hit]:
        if modify is not None:
            from referred.cir.compose import check_modification, no_combiner_error

            if not self.composes:
                raise no_combiner_error()
            check_modification(modify)
            if category is not None:  # the fake composes by moving to the next category
                i = self.categories.index(category)
                category = self.categories[(i + 1) % len(self.categories)]
            else:
                text = f"{text} {modify}"
        cond = {"category": category} if category else ({"text": text} if text else None)
        for pid in [*positive_ids, *negative_ids]:
            try:
                self.index.get([pid], vectors=False)
            except UnknownIdError:
                raise UnknownProductError(pid) from None
        self.feedback.append((list(positive_ids), list(negative_ids), list(exclude_ids)))
        if like is not None:  # a catalog product instead of a photo
            hits = self._like_hits(like, modify, filter)
        elif isinstance(image, list):  # several photos of the item: their mean query
            self.photos = len(image)
            mean = np.mean([self._query(i, cond) for i in image], axis=0)
            with self.rw.read():
                hits = self._hits(
                    *self.index.search(mean[None, :], len(self.index), filter=filter)
                )[0]
        else:
            hits = self.search_many([image], [cond], k=len(self.index), filter=filter)[0]
        banned = set(exclude_categories)
        self.excluded_texts = list(exclude_texts)
        return [
            h
            for h in hits
            if h.id not in exclude_ids
            and h.id != like
            and h.metadata.get("category") not in banned
            and not mentions(h.metadata, [t.lower() for t in exclude_texts])
        ][:k]

    def _like_hits(self, like: str, modify: str | None, filter: dict | None) -> list[Hit]:
        """Every product by its closeness to ``like``'s stored vector (with ``modify``, the
        fake composes by rolling it a step per word); ``self.liked`` records the request."""
        try:
            vector = self.index.get([like]).vectors[0]  # (16,)
        except UnknownIdError:
            raise UnknownProductError(like) from None
        self.liked = (like, modify)
        if modify is not None:
            vector = np.roll(vector, len(modify.split()))
        with self.rw.read():
            found = self.index.search(vector[None, :], len(self.index), filter=filter)
            return self._hits(*found)[0]

    def shop_the_look(
        self, image: Any, *, categories: Any = None, k: int = 10, filter_by_category: bool = True
    ) -> dict[str, list[Hit]]:
        cats = list(categories) if categories else list(self.categories)
        return {
            c: self.search(
                image, category=c, k=k, filter={"category": c} if filter_by_category else None
            )
            for c in cats
        }

    @property
    def composer(self) -> Any:
        """Stands for a Combiner when ``composes`` (what /categories reports)."""
        return object() if self.composes else None

    @property
    def has_presence(self) -> bool:
        return self.presence_probs is not None

    def presence(self, image: Any, *, category: Any = None, text: Any = None) -> Any:
        from referred.presence import Presence

        if self.presence_probs is None or (category is None and text is None):
            return None
        p = self.presence_probs.get(category, 0.0) if category else 0.5
        return Presence(p >= 0.5, p)

    def presence_all(self, image: Any, *, categories: Any = None) -> Any:
        if self.presence_probs is None:
            return None
        self.sizes.append(getattr(image, "size", None))
        names = list(categories) if categories else list(self.categories)
        return {c: self.presence(image, category=c) for c in names}

    def more_like_this(self, product_id: str, *, k: int = 10, filter: Any = None) -> list[Hit]:
        vec = self.index.get([product_id]).vectors
        scores, ids = self.index.search(vec, k, filter=filter)
        return [Hit(i, float(s), {}) for s, i in zip(scores[0], ids[0]) if i]

    def attention(
        self, image: Any, *, category: str | None = None, text: str | None = None
    ) -> np.ndarray:
        self._record("attention", 1)
        self.sizes.append(getattr(image, "size", None))
        if self.delay:
            time.sleep(self.delay)
        grid = np.arange(1, 17, dtype=np.float32).reshape(4, 4)  # (g, g)
        return grid / grid.sum()

    def product(self, product_id: str) -> dict[str, Any]:
        try:
            with self.rw.read():
                return dict(self.index.get([product_id], vectors=False).metadata[0])
        except UnknownIdError:
            raise UnknownProductError(product_id) from None


def png_bytes(
    color: tuple[int, int, int] = (200, 30, 30),
    size: tuple[int, int] = (32, 32),
    mode: str = "RGB",
    fmt: str = "PNG",
    **save: Any,
) -> bytes:
    img = Image.new("RGB", size, color)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def make_catalog(root: Path, n: int = 20) -> tuple[FakeModel, Any]:
    """``n`` coloured-square products (files under ``root``) in a flat index."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    model, images, metas, ids = FakeModel(), [], [], []
    for i in range(n):
        color = tuple(int(x) for x in rng.integers(0, 256, 3))
        img = Image.new("RGB", (24, 24), color)
        img.paste((255 - color[0], color[1], 40), (4 + i % 8, 4, 16, 12 + i % 10))
        name = f"p{i:03d}.png"
        img.save(root / name)
        images.append(img)
        ids.append(f"p{i:03d}")
        metas.append(
            {
                "category": LRVSF_CATEGORIES[i % len(LRVSF_CATEGORIES)],
                "title": f"product {i}",
                "image": name,
                "price": float(10 + i),
            }
        )
    index = create_index("flat", dim=DIM)
    index.add(ids, model.encode_targets(images), metas)
    return model, index


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def make_client(tmp_path: Path, catalog_dir: Path):
    """Factory: ``make_client(accepts_text=False, delay=0, **settings) -> TestClient``."""
    clients: list[TestClient] = []

    def make(
        accepts_text: bool = False,
        delay: float = 0.0,
        raise_errors: bool = True,
        presence: dict[str, float] | None = None,
        **changes: Any,
    ) -> TestClient:
        model, index = make_catalog(catalog_dir)
        samples = tmp_path / "samples"
        samples.mkdir(exist_ok=True)
        (samples / "scene-1.png").write_bytes(png_bytes((10, 120, 200), (48, 48)))
        (samples / "samples.json").write_text('{"scene-1.png": "a blue scene"}')
        base = {
            "image_root": catalog_dir,
            "samples_dir": samples,
            "admin_token": TOKEN,
            "upload_dir": tmp_path / "uploads",
        }
        settings = Settings(**{**base, **changes})
        app = create_app(settings)
        searcher = FakeSearcher(
            model, index, accepts_text=accepts_text, delay=delay, presence=presence
        )
        app.dependency_overrides[get_searcher] = lambda: searcher
        app.dependency_overrides[get_catalog] = lambda: Catalog(searcher)
        app.state.fake = searcher
        client = TestClient(app, raise_server_exceptions=raise_errors)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def photo() -> bytes:
    """A 40x30 PNG with some structure (so conditions change the fake's query)."""
    img = Image.new("RGB", (40, 30), (180, 40, 60))
    img.paste((20, 220, 90), (0, 0, 14, 30))
    img.paste((250, 250, 250), (26, 8, 40, 20))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def png():
    """The ``png_bytes(color, size, mode, fmt, **save)`` helper."""
    return png_bytes


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers carrying the admin token the test apps are configured with."""
    return auth()


@contextlib.contextmanager
def serving(app: Any, start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free 127.0.0.1 port in a thread; yields
    its base URL and stops the server on exit."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
