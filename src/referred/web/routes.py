"""Search endpoints: ``/search``, ``/shop-the-look`` and ``/attention``, and the parsing and
result shaping the other routes share.

Request bodies are multipart forms parsed here (not by FastAPI's ``File``/``Form``), so every
malformed or missing part gets a precise 4xx message; the OpenAPI schema is declared by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.datastructures import FormData

from referred.imageio import ImageDecodeError
from referred.web import schemas
from referred.web.routes_deps import (
    FormDep,
    RunnerDep,
    SearcherDep,
    SearchRunner,
    SettingsDep,
)
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import (
    decode_image,
    json_object_field,
    read_upload,
    text_field,
)

router = APIRouter()
IMAGE_SUFFIXES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def multipart_body(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a multipart form (routes parse the form themselves)."""
    schema = {"type": "object", "properties": fields, "required": required}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


IMAGE_FIELD = {
    "type": "string",
    "format": "binary",
    "description": "the photo: JPEG, PNG, WebP, GIF, BMP or TIFF",
}
CONDITION_FIELDS = {
    "category": {"type": "string", "description": "which item: one of GET /categories"},
    "text": {"type": "string", "description": "or free text (text-conditioned models only)"},
    "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
}


# -- parsing ----------------------------------------------------------------------------------
def parse_k(form: FormData, settings: Settings, default: int | None = None) -> int:
    raw = text_field(form, "k")
    default = settings.default_k if default is None else default
    if raw is None or raw.strip() == "":
        return default
    try:
        k = int(raw.strip())
    except ValueError:
        k = None
    if k is None or not 1 <= k <= settings.max_k:
        raise ApiError(
            422,
            "invalid_k",
            f"k must be an integer from 1 to {settings.max_k}, got {raw.strip()[:40]!r}",
        )
    return k


def match_category(name: str, categories: tuple[str, ...]) -> str:
    """The canonical spelling of ``name`` (case and spaces ignored); 422 listing valid ones."""
    key = " ".join(name.split()).casefold()
    for c in categories:
        if c.casefold() == key or c.casefold().replace(" ", "_") == key:
            return c
    raise ApiError(
        422,
        "unknown_category",
        f"unknown category {name[:60]!r}; valid categories: {', '.join(categories)}",
    )


def parse_condition(
    form: FormData, searcher: Any, settings: Settings
) -> tuple[str | None, str | None]:
    """(category, text): exactly one of them, validated."""
    category, text = text_field(form, "category"), text_field(form, "text")
    category = category if category and category.strip() else None
    if text is not None and category is None:
        return None, check_text(text, searcher, settings)
    if category is not None and text is not None and text.strip():
        raise ApiError(422, "ambiguous_condition", "give either 'category' or 'text', not both")
    if category is None:
        hint = " or a 'text'" if searcher.accepts_text else ""
        raise ApiError(
            422,
            "missing_condition",
            f"say which item you mean: a 'category' ({', '.join(searcher.category_choices)}){hint}",
        )
    return match_category(category, tuple(searcher.category_choices)), None


def check_text(text: str, searcher: Any, settings: Settings) -> str:
    if not searcher.accepts_text:
        raise ApiError(
            422,
            "text_not_supported",
            "this model is conditioned on categories only; send a 'category' instead "
            f"({', '.join(searcher.category_choices)})",
        )
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise ApiError(422, "empty_text", "the text condition is empty; describe the item")
    if len(text) > settings.max_text_chars:
        raise ApiError(
            422,
            "text_too_long",
            f"the text is {len(text)} characters; the limit is {settings.max_text_chars}",
        )
    return text


def parse_filter(form: FormData) -> dict[str, Any] | None:
    value = json_object_field(form, "filter")
    if value is None:
        return None
    for key, v in value.items():
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(x, (str, int, float, bool)) for x in items):
            raise ApiError(
                422,
                "invalid_filter",
                f"filter field {key!r} must be a string, a number or a list of them",
            )
    return value


def truthy(form: FormData, name: str) -> bool:
    return (text_field(form, name) or "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Searcher and index errors a request can cause → 422 naming the problem.

    The Searcher raises ValueError / KeyError subclasses for user errors (its ``USER_ERRORS``),
    and the index its ``IndexUsageError`` family (unknown filter field, bad filter value).
    """
    try:
        yield
    except ApiError:
        raise
    except ImageDecodeError as exc:
        raise ApiError(422, "corrupt_image", f"the image could not be decoded: {exc}") from exc
    except KeyError as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise ApiError(422, "invalid_request", str(message)) from exc
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc


# -- results ----------------------------------------------------------------------------------
def _json_value(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        with contextlib.suppress(ValueError, TypeError):
            v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v)


def image_url(product_id: str, metadata: dict[str, Any]) -> str | None:
    image = metadata.get("image")
    if not image:
        return None
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return image
    return f"/products/{quote(product_id, safe='')}/image"


def product_dict(product_id: str, metadata: dict[str, Any], score: float | None = None) -> dict:
    """A result / product as the API shows it: no server paths, JSON-safe values."""
    out: dict[str, Any] = {"id": product_id}
    if score is not None:
        out["score"] = round(float(score), 6)
    out["category"] = _json_value(metadata.get("category"))
    out["title"] = _json_value(metadata.get("title"))
    out["image_url"] = image_url(product_id, metadata)
    for key, value in metadata.items():
        if key not in out and key not in ("id", "image"):
            out[key] = _json_value(value)
    return out


def hits_json(hits: list[Any]) -> list[dict[str, Any]]:
    return [
        product_dict(h.id, dict(h.metadata), h.score)
        for h in hits
        if h.id and math.isfinite(h.score)
    ]


def attention_json(grid: Any) -> dict[str, Any]:
    rows = [[round(float(x), 5) for x in row] for row in grid]
    return {"grid": rows, "size": len(rows)}


# -- endpoints --------------------------------------------------------------------------------
async def _query_image(form: FormData, settings: Settings, runner: SearchRunner) -> Any:
    data = await read_upload(form, "image")
    return await runner.call(decode_image, data, settings.max_pixels)


@router.post(
    "/search",
    response_model=schemas.SearchResponse,
    tags=["search"],
    summary="Find the product a photo's chosen item is",
    openapi_extra=multipart_body(
        {
            "image": IMAGE_FIELD,
            **CONDITION_FIELDS,
            "filter": {"type": "string", "description": 'JSON object, e.g. {"category": "Bags"}'},
            "attention": {"type": "boolean", "description": "also return the attention grid"},
        },
        ["image"],
    ),
)
async def search(
    form: FormDep,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    start = time.perf_counter()
    category, text = parse_condition(form, searcher, settings)
    k, flt, want_attention = parse_k(form, settings), parse_filter(form), truthy(form, "attention")
    image = await _query_image(form, settings, runner)
    with user_errors():
        jobs = [runner.search(searcher, image, category=category, text=text, k=k, filter=flt)]
        if want_attention:
            jobs.append(runner.call(searcher.attention, image, category=category, text=text))
        done = await asyncio.gather(*jobs)
    body: dict[str, Any] = {
        "results": hits_json(done[0]),
        "condition": {"category": category, "text": text},
        "k": k,
        "took_ms": round((time.perf_counter() - start) * 1000, 2),
    }
    if want_attention:
        body["attention"] = attention_json(done[1])
    return body


@router.post(
    "/shop-the-look",
    response_model=schemas.ShopTheLookResponse,
    tags=["search"],
    summary="Results for every item of the look, one list per category",
    openapi_extra=multipart_body(
        {
            "image": IMAGE_FIELD,
            "categories": {
                "type": "string",
                "description": "comma-separated or repeated; default: all",
            },
            "k": CONDITION_FIELDS["k"],
        },
        ["image"],
    ),
)
async def shop_the_look(
    form: FormDep,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    start = time.perf_counter()
    k = parse_k(form, settings, default=min(5, settings.max_k))
    categories = parse_categories(form, searcher, settings)
    image = await _query_image(form, settings, runner)
    with user_errors():
        found = await runner.call(searcher.shop_the_look, image, categories=categories, k=k)
    return {
        "results": {c: hits_json(h) for c, h in found.items()},
        "k": k,
        "took_ms": round((time.perf_counter() - start) * 1000, 2),
    }


def parse_categories(form: FormData, searcher: Any, settings: Settings) -> list[str] | None:
    raw: list[str] = []
    for value in form.getlist("categories"):
        if not isinstance(value, str):
            raise ApiError(422, "invalid_field", "form field 'categories' must be text")
        value = value.strip()
        if value.startswith("["):
            try:
                items = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ApiError(
                    400, "malformed_json", f"'categories' is not valid JSON: {exc.msg}"
                ) from exc
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ApiError(422, "invalid_field", "'categories' must be a list of names")
            raw.extend(items)
        else:
            raw.extend(x for x in value.split(",") if x.strip())
    if not raw:
        return None
    if len(raw) > settings.max_categories:
        raise ApiError(422, "too_many_categories", f"at most {settings.max_categories} categories")
    names = [match_category(x, tuple(searcher.category_choices)) for x in raw]
    return list(dict.fromkeys(names))


@router.post(
    "/attention",
    response_model=schemas.AttentionResponse,
    tags=["search"],
    summary="Where the model looks in the photo for the chosen item",
    openapi_extra=multipart_body(
        {
            "image": IMAGE_FIELD,
            "category": CONDITION_FIELDS["category"],
            "text": CONDITION_FIELDS["text"],
        },
        ["image"],
    ),
)
async def attention(
    form: FormDep,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    category, text = parse_condition(form, searcher, settings)
    image = await _query_image(form, settings, runner)
    with user_errors():
        grid = await runner.call(searcher.attention, image, category=category, text=text)
    return {**attention_json(grid), "condition": {"category": category, "text": text}}
