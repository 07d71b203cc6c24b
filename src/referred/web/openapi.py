"""The OpenAPI schema, completed with what is only known at run time.

FastAPI builds the schema from the routes' own ``Form``/``File``/path parameters and their
declared ``responses``. This adds what depends on the served model and the settings, so the
schema says exactly what the running service accepts: the category names (an ``enum``), the
text length limit, k's range, how many categories shop-the-look takes, that a search needs
exactly one of ``category`` and ``text`` (only ``category`` for a model that takes no text) with
its photo, or ``like`` (a catalog product) and none of the photo's fields instead, the
image content types of uploads, and the bearer scheme of the write endpoints (or, when no admin
token is configured, that they take no credentials and answer 403). FastAPI's own
validation-error body is never sent (errors have one shape), so it is dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from referred.web.results import IMAGE_TYPES
from referred.web.settings import Settings

#: One non-space, non-control character: a text made of nothing else is refused.
TEXT_PATTERN = "[^\\s\\u0000-\\u001f\\u007f]"


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed schema (built on first use, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            searcher = getattr(app.state, "searcher", None)
            complete(schema, app.state.settings, searcher)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any], settings: Settings, searcher: Any = None) -> None:
    """Fill run-time limits and names into ``schema`` (in place); see the module docstring."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the admin token (REFERRED_ADMIN_TOKEN or --admin-token-file)",
    }
    image_types = ", ".join(dict.fromkeys(IMAGE_TYPES.values()))
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            if "security" in op and not settings.writes_enabled:
                # No admin token configured: no header opens these; every call answers 403.
                op["security"] = [{}]
                op["description"] = (
                    "Disabled on this server (no admin token is configured): answers 403."
                )
            responses = op.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]  # FastAPI's default body: never sent here
            media = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if media is None:
                continue
            body = _resolve(schema, media["schema"])
            media["encoding"] = {
                name: {"contentType": image_types}
                for name in ("image", "more_images")
                if name in body.get("properties", {})
            }
            default_k = 5 if path == "/shop-the-look" else None
            _limit_fields(body, settings, searcher, default_k)
            if path in ("/search", "/attention"):
                _one_condition(body, searcher)
            if path == "/search":
                _photo_or_like(body)
    for name in ("HTTPValidationError", "ValidationError"):
        if name not in str(schema.get("paths")):
            components.get("schemas", {}).pop(name, None)


def _resolve(schema: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in ref:
        return ref
    node: Any = schema
    for part in ref["$ref"].lstrip("#/").split("/"):
        node = node[part]
    return node


def _limit_fields(
    body: dict[str, Any], settings: Settings, searcher: Any, default_k: int | None
) -> None:
    props = body.get("properties", {})
    choices = list(getattr(searcher, "category_choices", None) or [])
    if "image" in props:
        props["image"]["minLength"] = 1  # an empty file is refused
    if "k" in props:
        props["k"].update(
            minimum=1,
            maximum=settings.max_k,
            default=min(default_k or settings.default_k, settings.max_k),
        )
    if "text" in props:
        props["text"].update(minLength=1, maxLength=settings.max_text_chars, pattern=TEXT_PATTERN)
    if "category" in props and choices:
        props["category"]["enum"] = choices
    if "categories" in props:
        props["categories"]["maxItems"] = settings.max_categories
        if choices:
            props["categories"]["items"]["enum"] = choices


def _one_condition(body: dict[str, Any], searcher: Any) -> None:
    """Exactly one of ``category`` and ``text``; ``category`` alone for a category-only model."""
    if searcher is None:
        return
    if searcher.accepts_text:
        body["oneOf"] = [{"required": ["category"]}, {"required": ["text"]}]
    else:
        body.get("properties", {}).pop("text", None)
        body["required"] = sorted({*body.get("required", []), "category"})


#: /search fields that go with a photo only (``like`` replaces the photo; ``attention``, a
#: flag whose ``false`` is harmless, is left to the message).
PHOTO_FIELDS = ("image", "more_images", "category", "text", "box")


def _photo_or_like(body: dict[str, Any]) -> None:
    """/search: a photo (``image``, and the condition :func:`_one_condition` asked for), or
    ``like`` without any of :data:`PHOTO_FIELDS`. Run again on its own output, the same."""
    props = body.get("properties", {})
    needs = [r for r in body.pop("required", []) if r != "image"]
    conditions = [o["required"] for o in body.pop("oneOf", []) if "like" not in o["required"]]
    photo = [{"required": list(dict.fromkeys(["image", *needs, *c]))} for c in conditions or [[]]]
    others = [{"required": [f]} for f in PHOTO_FIELDS if f in props]
    body["oneOf"] = [*photo, {"required": ["like"], "not": {"anyOf": others}}]
