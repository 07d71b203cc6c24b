"""The FastAPI application: ``create_app(settings)``.

The model and the index are loaded in the lifespan (never at import), the Searcher is built
from them, and routes reach it through dependencies. Every error leaves as JSON in one shape
(``{"error": {...}}``, see :mod:`referred.web.schemas`): client mistakes as 4xx with a
message naming the problem, anything unexpected as a logged 500 carrying a request id.
The web page and the API docs page are static files served from this package (no CDN).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from referred.web.routes_deps import Catalog, SearchRunner
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import BodyLimitMiddleware

log = logging.getLogger("referred.web")
STATIC = Path(__file__).parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


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
    _add_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)
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


# -- errors -------------------------------------------------------------------------------------
def error_response(
    request: Request, status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "") or ""
    body = {"error": {"status": status, "code": code, "message": message, "request_id": request_id}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.message, exc.extra.get("headers"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path[:200]}"
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path[:200]}"
        return error_response(
            request, exc.status_code, code, message, getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.exception(
            "unexpected error in %s %s (request %s)", request.method, request.url.path, request_id
        )
        return error_response(
            request,
            500,
            "internal_error",
            f"unexpected server error; quote request id {request_id} when reporting it",
        )


class RequestIdMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` when sane) and echo it back;
    also set the headers that keep browsers from sniffing or framing responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
