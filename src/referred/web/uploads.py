"""Upload validation: request size (streamed), multipart parsing, image format and pixels.

Everything a client can get wrong about an upload becomes an :class:`ApiError` with a 4xx
status and a message that names the problem:

* the request body is counted as it streams in (:class:`BodyLimitMiddleware`); a declared or
  actual size over ``max_upload_bytes`` is answered 413, and the rest of the body is read and
  dropped first (up to :data:`DRAIN_BYTES`), so that a client still sending gets the readable
  413 instead of a connection reset;
* a body that is not ``multipart/form-data`` is 415, a broken multipart body 400;
* an image is sniffed from its bytes (never from its filename or declared type): empty → 422,
  not a JPEG/PNG/WebP/GIF/BMP/TIFF (SVG included) → 415, more pixels than ``max_pixels`` → 413
  (checked from the header, before decoding), truncated or corrupt → 422.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import anyio
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from referred.imageio import ImageDecodeError, open_image
from referred.web.schemas import ApiError, error_body
from referred.web.settings import ACCEPTED_FORMATS

ACCEPTED_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
MAX_FORM_FIELDS = 64
#: Files in one form: a search's photo and its more_images (MAX_QUERY_IMAGES in all), + 1.
MAX_FORM_FILES = 9
MAX_FIELD_BYTES = 64 * 1024
#: An over-limit body is read and dropped up to this size (and for at most DRAIN_SECONDS)
#: before the 413 is sent: closing on a client still sending resets its connection, and it
#: never sees the answer. Past these bounds the connection is closed after the 413.
DRAIN_BYTES = 256 * 1024 * 1024
DRAIN_SECONDS = 20.0
_PIXELS = re.compile(r"\((\d+) pixels\)")


def _human(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, never handing more to the app.

    A ``Content-Length`` over the limit is refused before the app runs. A body without one
    (chunked) is counted as it arrives; past the limit the app is told the client went away
    and whatever it tries to answer is replaced by the 413. Either way the remaining body is
    drained (bounded) before answering, unless the client sent ``Expect: 100-continue`` and so
    waits for the answer before sending.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        waiting = headers.get(b"expect", b"").lower() == b"100-continue"
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(scope, send, 400, "bad_request", "invalid Content-Length")
                return
            if size > self.limit:
                if not waiting and size <= DRAIN_BYTES:
                    await _drain(receive)
                await self._refuse_size(scope, send, size)
                return
        seen, exceeded, started, finished = 0, False, False, False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded, finished
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if seen > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            if not finished:
                await _drain(receive)
            await self._refuse_size(scope, send, None)

    async def _refuse_size(self, scope: Scope, send: Send, size: int | None) -> None:
        got = f" ({_human(size)})" if size is not None else ""
        await self._refuse(
            scope,
            send,
            413,
            "payload_too_large",
            f"request body{got} exceeds the upload limit of {_human(self.limit)} "
            "(setting max_upload_bytes)",
        )

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        request_id = scope.get("state", {}).get("request_id", "")
        body = json.dumps(error_body(status, code, message, request_id)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    """Read and drop what is left of the request body, within DRAIN_BYTES / DRAIN_SECONDS."""
    left = DRAIN_BYTES
    with anyio.move_on_after(DRAIN_SECONDS):
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return


async def read_form(request: Request) -> FormData:
    """The multipart form of ``request``; 415 for another content type, 400 when broken."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        got = ctype.split(";")[0].strip() or "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"this endpoint takes multipart/form-data (an 'image' file plus form fields), "
            f"got {got}",
        )
    try:
        return await request.form(
            max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
        raise ApiError(400, "malformed_multipart", f"malformed multipart body: {detail}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_multipart", f"malformed multipart body: {exc}") from exc


async def read_image(upload: UploadFile, name: str = "image") -> bytes:
    """The bytes of an uploaded file; 422 when it is empty."""
    data = await upload.read()
    if not data:
        raise ApiError(422, "empty_image", f"the uploaded {name!r} file is empty (0 bytes)")
    return data


def sniff_format(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(Pillow format, width, height) from the header alone; ApiError when not acceptable."""
    head = data[:4096].lstrip().lower()
    if head.startswith(b"<?xml") or b"<svg" in head:
        raise ApiError(
            415,
            "unsupported_image_format",
            f"SVG images are not accepted; send a {ACCEPTED_NAMES} photo",
        )
    limit = f"the limit of {max_pixels / 1e6:g} megapixels (setting max_pixels)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (w, h) = img.format or "unknown", img.size
    except Image.DecompressionBombError as exc:
        # Pillow refuses it before we can read the size; its own (larger) limit is not ours.
        found = _PIXELS.search(str(exc))
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
        raise ApiError(413, "image_too_large", f"image is {size}, over {limit}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(
            415,
            "unsupported_image_format",
            f"the upload is not a recognised image; send a {ACCEPTED_NAMES} file",
        ) from exc
    if fmt not in ACCEPTED_FORMATS:
        raise ApiError(
            415,
            "unsupported_image_format",
            f"{fmt} images are not accepted; send a {ACCEPTED_NAMES} file",
        )
    if w < 1 or h < 1:
        raise ApiError(422, "invalid_image", f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over {limit}",
        )
    return fmt, w, h


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Validated RGB image from upload bytes (CPU-bound: call it off the event loop)."""
    sniff_format(data, max_pixels)
    try:
        return open_image(data, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise ApiError(
            422,
            "corrupt_image",
            f"the image could not be decoded (truncated or corrupt); send a {ACCEPTED_NAMES} file",
        ) from exc
