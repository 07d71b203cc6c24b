"""ASGI middleware: request ids and the last line of defence against bugs; HEAD and OPTIONS.

* :class:`RequestIdMiddleware` gives each request an id (the client's ``X-Request-ID`` when
  sane), echoes it back with headers that keep browsers from sniffing or framing responses, and
  turns any exception that escaped the routes into a logged ``500 internal_error`` JSON answer
  (the traceback goes to the ``referred.web`` log, never to the client); the server goes on.
* :class:`MethodsMiddleware` answers ``HEAD`` on every ``GET`` resource (the ``GET`` answer's
  headers, no body) and ``OPTIONS`` with the ``Allow`` header of that path: the methods of every
  route matching it, ``HEAD`` and ``OPTIONS`` included. A ``405`` carries the same ``Allow``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from referred.web.schemas import error_body

log = logging.getLogger("referred.web")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PROBED = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route of ``app`` answers on ``path`` (empty: no route has the path).

    Asked of the router itself (a probe scope per method), so routers included in routers and
    path convertors count exactly as they do when a request is routed.
    """
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Mount):
            if path.startswith(route.path.rstrip("/") + "/"):
                methods |= {"GET", "HEAD"}  # static files
            continue
        for method in _PROBED:
            probe = {
                "type": "http",
                "method": method,
                "path": path,
                "root_path": "",
                "headers": [],
                "query_string": b"",
            }
            if route.matches(probe)[0] == Match.FULL:
                methods.add(method)
    if not methods:
        return []
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return [m for m in _ORDER if m in methods]


async def send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": data})


class RequestIdMiddleware:
    """Request ids, security headers, and unexpected exceptions → logged JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            method = scope.get("referred.method", scope.get("method"))
            log.exception(
                "unexpected error in %s %s (request %s)", method, scope.get("path"), request_id
            )
            if started:  # too late for a JSON answer; the server closes the connection
                raise
            message = f"unexpected server error; quote request id {request_id} when reporting it"
            body = error_body(500, "internal_error", message, request_id)
            await send_json(send_with_id, 500, body)


class MethodsMiddleware:
    """``HEAD`` as ``GET`` without the body; ``OPTIONS`` answered with the path's ``Allow``."""

    def __init__(self, app: ASGIApp, api: Any) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self._options(scope, send)
            return
        scope = {**scope, "method": "GET", "referred.method": "HEAD"}
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.body":
                if done or message.get("more_body", False):
                    return
                done, message = True, {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app(scope, receive, headers_only)

    async def _options(self, scope: Scope, send: Send) -> None:
        allowed = allowed_methods(self.api, scope["path"])
        if not allowed:
            request_id = scope.get("state", {}).get("request_id", "")
            message = f"no such endpoint: OPTIONS {scope['path'][:200]}"
            await send_json(send, 404, error_body(404, "not_found", message, request_id))
            return
        headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
