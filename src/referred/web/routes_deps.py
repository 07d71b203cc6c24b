"""What routes depend on: settings, the Searcher, the catalog writer, auth, and the runner.

Every heavy object reaches a route through a FastAPI dependency (``get_searcher``,
``get_catalog``), so tests swap them with ``app.dependency_overrides``.

Searcher calls are CPU-bound and never run on the event loop. :class:`SearchRunner` runs them
in worker threads, at most ``max_inflight`` at once; the other requests wait in arrival order
(a FIFO capacity limiter), so no request starves behind the forward slots
(:mod:`referred.slots`), which threads would otherwise take in no particular order. With
``batching="micro"`` it also gathers concurrent ``/search`` requests into one ``search_many``
call (while one batch runs, the next queues up).
The runner holds no lock of its own: the Searcher is the one lock layer (catalog writes take
its index lock only for the index change, after the new product's forward), so a product
write goes through the same queue as a search and never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from referred.web.forms import before_body
from referred.web.schemas import ApiError
from referred.web.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    searcher: Any
    image: Any
    condition: dict[str, str] | None
    k: int
    filter: dict[str, Any] | None
    future: asyncio.Future = field(repr=False)

    @property
    def key(self) -> tuple[int, int, str]:
        return id(self.searcher), self.k, json.dumps(self.filter, sort_keys=True, default=str)


class SearchRunner:
    """Runs Searcher calls in worker threads; ``search`` is micro-batched when enabled."""

    def __init__(self, settings: Settings) -> None:
        self.batching = settings.batching == "micro"
        self.max_batch = settings.max_batch
        self.wait_s = settings.batch_wait_ms / 1000.0
        self.max_inflight = settings.max_inflight
        self._limiter: anyio.CapacityLimiter | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.batching and self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._worker(), name="referred-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread, at most ``max_inflight`` at once (FIFO).

        Catalog writes come through here too: their forward is one more in the queue, and the
        Searcher takes its index lock only for the index change itself.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_inflight)
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)

    async def search(
        self,
        searcher: Any,
        image: Any,
        *,
        category: str | None,
        text: str | None,
        k: int,
        filter: dict[str, Any] | None,
    ) -> list[Any]:
        if not self.batching or self._queue is None:
            return await self.call(
                searcher.search, image, category=category, text=text, k=k, filter=filter
            )
        future = asyncio.get_running_loop().create_future()
        condition = (
            {"category": category}
            if category is not None
            else ({"text": text} if text is not None else None)
        )
        await self._queue.put(_Pending(searcher, image, condition, k, filter, future))
        return await future

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            if self.wait_s:
                await asyncio.sleep(self.wait_s)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            groups: dict[tuple[int, int, str], list[_Pending]] = {}
            for item in batch:
                groups.setdefault(item.key, []).append(item)
            for items in groups.values():
                live = [p for p in items if not p.future.done()]
                if live:
                    await self._run_group(live)

    async def _run_group(self, items: list[_Pending]) -> None:
        first = items[0]
        try:
            hits = await self.call(
                first.searcher.search_many,
                [p.image for p in items],
                [p.condition for p in items],
                k=first.k,
                filter=first.filter,
            )
        except Exception as exc:
            if len(items) == 1:
                self._settle(items[0], None, exc)
                return
            # One bad request must not fail its neighbours: answer each on its own.
            for p in items:
                try:
                    one = await self.call(
                        p.searcher.search_many, [p.image], [p.condition], k=p.k, filter=p.filter
                    )
                    self._settle(p, one[0], None)
                except Exception as exc:
                    self._settle(p, None, exc)
            return
        for p, h in zip(items, hits):
            self._settle(p, h, None)

    @staticmethod
    def _settle(p: _Pending, result: Any, exc: BaseException | None) -> None:
        if p.future.done():
            return
        if exc is not None:
            p.future.set_exception(exc)
        else:
            p.future.set_result(result)


@dataclass
class Catalog:
    """What ``POST/DELETE /products`` change, through the Searcher's own write methods (which
    embed with the served model and take its index lock), optionally saved after each write."""

    searcher: Any
    index_dir: Any = None
    persist: bool = False

    def upsert(self, product_id: str, image: Any, metadata: dict[str, Any]) -> int:
        self.searcher.upsert_product(product_id, image, metadata)
        self._persist()
        return len(self.searcher.index)

    def delete(self, product_id: str) -> int:
        self.searcher.delete_product(product_id)
        self._persist()
        return len(self.searcher.index)

    def _persist(self) -> None:
        if self.persist and self.index_dir is not None:
            self.searcher.save_index(self.index_dir)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_runner(request: Request) -> SearchRunner:
    return request.app.state.runner


def get_searcher(request: Request) -> Any:
    searcher = getattr(request.app.state, "searcher", None)
    if searcher is None:
        raise ApiError(
            503,
            "not_ready",
            "no model and index are loaded; start the service with "
            "`referred serve --index DIR --model PATH`",
        )
    return searcher


def get_catalog(request: Request) -> Catalog:
    catalog = getattr(request.app.state, "catalog", None)
    if catalog is None:
        raise ApiError(503, "not_ready", "no catalog is loaded, so products cannot be changed")
    return catalog


@before_body
def require_admin(request: Request) -> None:
    """403 when writes are disabled (no token configured), 401 without the right token."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise ApiError(
            403,
            "writes_disabled",
            "adding and deleting products is disabled: no admin token is configured "
            "(set REFERRED_ADMIN_TOKEN or start with --admin-token-file FILE)",
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint needs 'Authorization: Bearer <admin token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "the bearer token is not the admin token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


# Dependency-typed parameters for routes: ``searcher: SearcherDep``.
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[SearchRunner, Depends(get_runner)]
SearcherDep = Annotated[Any, Depends(get_searcher)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
