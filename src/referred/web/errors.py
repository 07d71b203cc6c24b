"""Every error leaves the service as ``{"error": {"status", "code", "message", "request_id"}}``.

Which errors are the client's is declared once: :class:`~referred.web.schemas.ApiError` (raised
by the web layer: uploads, forms, auth) and the Searcher's
:data:`referred.search.errors.USER_ERRORS` (mapped here by :func:`user_error`). They become 4xx
answers whose message names the bad value and what is accepted. Anything else is a bug: a
``500 internal_error`` whose message carries only the request id, with the traceback logged by
the ``referred.web`` logger (see :class:`referred.web.middleware.RequestIdMiddleware`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from referred.imageio import ImageDecodeError
from referred.index.errors import FilterError, MetadataError, UnknownFieldError
from referred.region import BoxError
from referred.search.errors import (
    USER_ERRORS,
    QueryError,
    UnknownCategoryError,
    UnknownProductError,
    UnsupportedConditionError,
)
from referred.web.schemas import ApiError, ErrorBody, error_body
from referred.web.uploads import ACCEPTED_NAMES

log = logging.getLogger("referred.web")

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
#: What a missing required field should hold, for the message.
FIELD_HINTS = {"id": ": the product id, 1 to 256 characters"}
#: ``<_io.BytesIO object at 0x7f…>`` and the like: internals that never reach a client.
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "") or ""
    return JSONResponse(
        error_body(status, code, message, request_id), status_code=status, headers=headers
    )


def user_error(exc: BaseException) -> ApiError:
    """The 4xx answer for one of the Searcher's :data:`USER_ERRORS` (most specific first)."""
    message = _OBJECT_REPR.sub("the upload", str(exc))
    if isinstance(exc, UnknownProductError):
        return ApiError(404, "unknown_product", message)
    if isinstance(exc, UnknownCategoryError):
        return ApiError(422, "unknown_category", message)
    if isinstance(exc, UnsupportedConditionError):
        return ApiError(422, "unsupported_condition", message)
    if isinstance(exc, BoxError):
        return ApiError(422, "invalid_box", message)
    if isinstance(exc, QueryError):
        return ApiError(422, "invalid_query", message)
    if isinstance(exc, UnknownFieldError):
        return ApiError(422, "unknown_filter_field", message)
    if isinstance(exc, FilterError):
        return ApiError(422, "invalid_filter", message)
    if isinstance(exc, MetadataError):
        return ApiError(422, "invalid_metadata", message)
    if isinstance(exc, ImageDecodeError):
        return ApiError(
            422,
            "corrupt_image",
            f"the image could not be decoded (truncated or corrupt); send a {ACCEPTED_NAMES} file",
        )
    raise TypeError(f"{type(exc).__name__} is not one of USER_ERRORS")  # pragma: no cover


# -- request validation (FastAPI's form and path models) -----------------------------------------
def validation_error(exc: RequestValidationError, settings: Any) -> ApiError:
    """The first problem FastAPI found in a request, as a specific code and message."""
    errors = list(exc.errors())
    if not errors:  # pragma: no cover
        return ApiError(422, "invalid_request", "invalid request")
    err = errors[0]
    loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "path", "query")]
    field = loc[0] if loc else ""
    kind = str(err.get("type", ""))
    given = err.get("input")
    if field == "image" and kind == "missing":
        return ApiError(
            422,
            "missing_image",
            f"missing form field 'image': attach the photo as a file ({ACCEPTED_NAMES})",
        )
    if field == "image":
        return ApiError(
            422, "image_not_a_file", "form field 'image' must be a file upload, got a text value"
        )
    if kind == "missing":
        what = FIELD_HINTS.get(field, "")
        return ApiError(422, "missing_field", f"missing form field {field!r}{what}")
    if field == "k":
        shown = str(given).strip()[:40]
        return ApiError(
            422, "invalid_k", f"k must be an integer from 1 to {settings.max_k}, got {shown!r}"
        )
    if not isinstance(given, str) and given is not None and "str" in kind:
        return ApiError(422, "invalid_field", f"form field {field!r} must be text, got a file")
    where = ".".join(loc) or "request"
    return ApiError(422, "invalid_field", f"{where}: {err.get('msg', 'invalid value')}")


# -- registration ---------------------------------------------------------------------------------
def add_error_handlers(app: FastAPI) -> None:
    from referred.web.middleware import allowed_methods

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.message, exc.extra.get("headers"))

    async def searcher_error(request: Request, exc: Exception) -> JSONResponse:
        return await api_error(request, user_error(exc))

    for kind in USER_ERRORS:
        app.add_exception_handler(kind, searcher_error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await api_error(request, validation_error(exc, request.app.state.settings))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        code = _STATUS_CODES.get(status, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(getattr(exc, "headers", None) or {})
        method = request.scope.get("referred.method", request.method)
        path = request.url.path[:200]
        if status == 404 and message == "Not Found":
            message = f"no such endpoint: {method} {path}"
        if status == 405:
            allowed = allowed_methods(request.app, request.url.path)
            headers["Allow"] = ", ".join(allowed)
            message = f"method {method} is not allowed on {path}; allowed: {headers['Allow']}"
        if status == 400 and message == "There was an error parsing the body":
            code, message = "malformed_multipart", "malformed multipart body"
        return error_response(request, status, code, message, headers or None)


# -- OpenAPI: the error responses each route declares ---------------------------------------------
_WHEN = {
    400: "malformed body: broken multipart, a field sent twice, JSON that does not parse",
    401: "missing or wrong 'Authorization: Bearer <admin token>'",
    403: "writes are disabled: no admin token is configured",
    404: "unknown product, image or sample",
    413: "request body over max_upload_bytes, or image over max_pixels",
    415: "body not multipart/form-data, or an image format that is not accepted",
    422: "a field is missing or its value is wrong; the message names it and what is accepted",
    500: "a bug: the body carries the request id, the log the traceback",
    503: "no model and index are loaded",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the error body model and when it occurs
    (500 on every route: a bug is always possible)."""
    return {s: {"model": ErrorBody, "description": _WHEN[s]} for s in (*statuses, 500)}
