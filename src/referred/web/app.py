"""The FastAPI application: ``create_app(settings)``.

The model and the index are loaded in the lifespan (never at import), the Searcher is built
from them, and routes reach it through dependencies. Every error leaves as JSON in one shape
(``{"error": {...}}``, see :mod:`referred.web.errors`): client mistakes as 4xx with a
message naming the problem, anything unexpected as a logged 500 carrying a request id.
``HEAD`` and ``OPTIONS`` are answered for every path (:mod:`referred.web.middleware`); the
OpenAPI schema is completed with the served model's names and limits (:mod:`referred.web.openapi`).
The web page and the API docs page are static files served from this package (no CDN).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from referred.web.errors import add_error_handlers
from referred.web.middleware import MethodsMiddleware, RequestIdMiddleware
from referred.web.openapi import install_openapi
from referred.web.routes_deps import Catalog, SearchRunner
from referred.web.settings import Settings
from referred.web.uploads import BodyLimitMiddleware

log = logging.getLogger("referred.web")
STATIC = Path(__file__).parent / "static"


def create_app(
    settings: Settings | None = None,
    *,
    searcher: Any = None,
    model: Any = None,
    index: Any = None,
    info: dict[str, Any] | None = None,
) -> FastAPI:
    """The service. Pass ``searcher`` (+ ``model``/``index`` for writes) to serve objects
    built in-process (the demo); otherwise the lifespan loads ``settings.model_path`` and
    ``settings.index_dir``. With neither, search endpoints answer 503 until a test overrides
    the ``get_searcher`` dependency.
    """
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        if state.searcher is None and settings.index_dir is not None:
            loaded = await anyio.to_thread.run_sync(load_components, settings)
            state.searcher, state.catalog, state.info, state.settings = loaded
        runner: SearchRunner = state.runner
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()

    app = FastAPI(
        title="referred",
        summary="Referred visual search: a photo + which item you mean → that product.",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # the default Swagger UI loads from a CDN; /docs is a local page
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.searcher = searcher
    app.state.catalog = (
        Catalog(searcher, settings.index_dir, settings.persist_writes)
        if searcher is not None
        else None
    )
    app.state.info = info or {}
    app.state.runner = SearchRunner(settings)

    from referred.web import routes, routes_info, routes_products

    app.include_router(routes.router)
    app.include_router(routes_products.router)
    app.include_router(routes_info.router)
    _add_pages(app)
    add_error_handlers(app)
    install_openapi(app)
    # outermost last: request id (and the 500 of last resort) → HEAD/OPTIONS → body limit
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
    app.add_middleware(MethodsMiddleware, api=app)
    app.add_middleware(RequestIdMiddleware)
    return app


def load_components(settings: Settings) -> tuple[Any, Catalog, dict[str, Any], Settings]:
    """Searcher, catalog writer, info and the settings completed from the index (lifespan).

    Without ``model_path`` the model recorded in the index at build time is loaded. Without
    ``image_root`` the catalog source recorded at build time is used (a folder, or a table's
    folder), so ``referred serve --index DIR`` serves the images it was built from.
    """
    from referred.index import load_index
    from referred.model import load_model
    from referred.search.searcher import Searcher

    log.info("loading index %s", settings.index_dir)
    index = load_index(settings.index_dir)
    info = dict(getattr(index, "info", None) or {})
    model_ref = settings.model_path or (info.get("model") or {}).get("path")
    if not model_ref:
        raise ValueError(f"{settings.index_dir} records no model; pass --model PATH")
    log.info("loading model %s", model_ref)
    model = load_model(model_ref)
    searcher = Searcher(model, index, max_k=settings.max_k, threads=settings.threads)
    searcher.warm_up()
    if settings.image_root is None and info.get("source"):
        source = Path(info["source"])
        root = source if source.is_dir() else source.parent
        if root.is_dir():
            log.info("serving product images from %s (the catalog source)", root)
            settings = settings.with_(image_root=root)
    log.info("serving %d products", len(index))
    catalog = Catalog(searcher, settings.index_dir, settings.persist_writes)
    return searcher, catalog, {"model": str(model_ref), "trained": None}, settings


def _version() -> str:
    try:
        from referred import __version__
    except ImportError:  # pragma: no cover
        return "0"
    return __version__


# -- pages --------------------------------------------------------------------------------------
#: The pages load only their own scripts and styles; product images may be remote URLs.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: https: http:; "
    "script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
}


def _add_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
