"""Multipart forms: FastAPI's own ``Form``/``File`` parameters, with this service's upload rules.

Routes declare their fields as ``Annotated[..., Form()]`` / ``UploadFile`` parameters (the
aliases below), so FastAPI validates them and the OpenAPI schema shows them as they are.
:class:`FormRoute` runs first, before FastAPI reads the body:

1. guards marked ``before_body`` (the admin token check) run before any of the body is read;
2. a body that is not ``multipart/form-data`` is 415, a broken one 400, with this service's
   limits (:data:`~referred.web.uploads.MAX_FORM_FIELDS` fields, 4 files, 64 KiB per field);
3. a declared field sent more than once is 422 (``duplicate_field``), except list fields;
   fields the route does not declare are ignored.

FastAPI then finds the parsed form cached on the request. What a schema cannot say (a JSON
object in a text field, a yes/no flag, k within the configured range) is parsed by the helpers
here, each answering 4xx with a message naming the value and what is accepted.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import File, Form, Request, UploadFile
from fastapi.routing import APIRoute
from pydantic import WithJsonSchema
from starlette.responses import Response

from referred.region import Box, BoxError, parse_box
from referred.search.searcher import MAX_QUERY_IMAGES
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import ACCEPTED_NAMES, read_form

#: The spellings of a yes/no form field.
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def before_body(guard: Callable[[Request], None]) -> Callable[[Request], None]:
    """Mark a dependency to be run by :class:`FormRoute` before the body is read."""
    guard.before_body = True  # type: ignore[attr-defined]
    return guard


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(a) for a in get_args(annotation))
    return get_origin(annotation) is list


class FormRoute(APIRoute):
    """An APIRoute whose multipart body is checked by this service's rules before FastAPI
    validates the declared fields (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [
            d.dependency for d in self.dependencies if getattr(d.dependency, "before_body", False)
        ]
        if self.body_field is None:
            return handler
        single = {
            f.alias for f in self.dependant.body_params if not _is_list(f.field_info.annotation)
        }

        async def route(request: Request) -> Response:
            for guard in guards:
                guard(request)
            form = await read_form(request)  # cached: FastAPI's own request.form() reuses it
            for name in single & set(form.keys()):  # fields not declared are ignored
                count = len(form.getlist(name))
                if count > 1:
                    raise ApiError(
                        422,
                        "duplicate_field",
                        f"form field {name[:60]!r} was sent {count} times; send it once",
                    )
            return await handler(request)

        return route


# -- field types ---------------------------------------------------------------------------------
def _text(description: str, **schema: Any) -> Any:
    """An optional text field; the schema says string (an absent field is simply left out)."""
    return Annotated[
        str | None,
        WithJsonSchema({"type": "string", "description": description, **schema}),
        Form(),
    ]


ImageFile = Annotated[
    UploadFile, File(description=f"the photo: {ACCEPTED_NAMES}, recognised from its bytes")
]
#: /search's photo: optional there, since ``like`` (a catalog product) may replace it.
OptionalImageFile = Annotated[
    UploadFile | None,
    WithJsonSchema(
        {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": f"the photo: {ACCEPTED_NAMES}, recognised from its bytes; required "
            "unless `like` names a catalog product instead",
        }
    ),
    File(),
]
MoreImagesField = Annotated[
    list[UploadFile] | None,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "contentMediaType": "application/octet-stream"},
            "maxItems": MAX_QUERY_IMAGES - 1,
            "description": "more photos of the same item (repeat the field; with `image`, at "
            f"most {MAX_QUERY_IMAGES} in all): the query is the mean of every photo's, each "
            "under the same condition and box; presence and attention answer for `image`",
        }
    ),
    File(),
]
CategoryField = _text("which item: one of GET /categories (case ignored)")
TextField = _text("or describe the item in free text (text-conditioned models only)")
ModifyField = _text(
    "this item, but changed: 'in red', 'same but striped' (models with a Combiner, "
    "docs/cir.md); at most 300 characters"
)
LikeField = _text(
    "instead of a photo, start from this catalog product (its id, as in results): with "
    "`modify` that product changed ('the same bag, but in red'), without it more like it; the "
    "product itself is not returned. Send no image, more_images, category, text, box or "
    "attention with it",
    minLength=1,
    maxLength=256,
)
KField = Annotated[
    int | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "description": "how many results"}),
    Form(),
]
FlagField = Annotated[
    str | None,
    WithJsonSchema({"type": "boolean", "description": "true/false (also accepted: 1/0, yes/no)"}),
    Form(),
]
IncludeAbsentField = Annotated[
    str | None,
    WithJsonSchema(
        {
            "type": "boolean",
            "description": "also shop categories the presence head did not find in the photo "
            "(default false; true/false, 1/0, yes/no)",
        }
    ),
    Form(),
]
#: A JSON object in a text field (the pattern: it starts with "{", after JSON's whitespace).
JSON_OBJECT = {"contentMediaType": "application/json", "pattern": "^[ \\t\\n\\r]*\\{"}
FilterField = _text(
    'JSON object of field → value or [values], e.g. {"category": ["Bags", "Feet"]}',
    **JSON_OBJECT,
    contentSchema={
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                {"type": ["string", "number", "boolean"]},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
            ]
        },
    },
)
MetadataField = _text(
    "JSON object of extra fields (strings, numbers, booleans)",
    **JSON_OBJECT,
    contentSchema={
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    },
)
BoxField = _text(
    "only this region of the photo: x0,y0,x1,y1 (left, top, right, bottom) as fractions of the "
    "width and height when all four are in [0, 1], else in pixels; e.g. 0.2,0.4,0.6,0.9",
    pattern=r"^\s*\[?\s*[0-9.eE+-]+(\s*,\s*[0-9.eE+-]+){3}\s*\]?\s*$",
)


def _list_field(description: str) -> Any:
    """An optional list field (repeated, comma-separated or a JSON list; see split_list_field)."""
    return Annotated[
        list[str] | None,
        WithJsonSchema({"type": "array", "items": {"type": "string"}, "description": description}),
        Form(),
    ]


_AS_IDS = " (repeat the field, or comma-separate, or a JSON list of ids)"
PositiveIdsField = _list_field("products marked good: results move towards them" + _AS_IDS)
NegativeIdsField = _list_field("products marked bad: results move away from them" + _AS_IDS)
ExcludeIdsField = _list_field("products never to return (e.g. ones already seen)" + _AS_IDS)
ExcludeCategoriesField = _list_field(
    "categories never to return, e.g. Feet (repeat the field, or comma-separate, or a JSON "
    "list; names as for category)"
)
ExcludeTextsField = _list_field(
    "words or phrases a result's catalog text (title, caption, colour…) must not name, e.g. "
    'black ("not the black one"; repeat the field, or comma-separate, or a JSON list)'
)
CategoriesField = _list_field(
    "categories to shop (repeat the field, or comma-separate, or a JSON list); default: all of "
    "GET /categories"
)


# -- values a schema cannot check -----------------------------------------------------------------
def check_k(k: int | None, settings: Settings, default: int | None = None) -> int:
    if k is None:
        return settings.default_k if default is None else default
    if not 1 <= k <= settings.max_k:
        shown = str(k) if len(str(k)) <= 40 else str(k)[:37] + "..."
        raise ApiError(
            422, "invalid_k", f"k must be an integer from 1 to {settings.max_k}, got {shown!r}"
        )
    return k


def parse_flag(value: str | None, name: str) -> bool:
    """A yes/no field: true/false, 1/0, yes/no (any case); absent or empty is false."""
    if value is None or not value.strip():
        return False
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    accepted = "/".join(f"{t}/{f}" for t, f in zip(TRUE_WORDS, FALSE_WORDS))
    raise ApiError(
        422, "invalid_flag", f"form field {name!r} must be one of {accepted}, got {value[:40]!r}"
    )


def parse_box_field(raw: str | None) -> Box | None:
    """The ``box`` field (:mod:`referred.region`); absent or empty is the whole photo."""
    if raw is None or not raw.strip():
        return None
    try:
        return parse_box(raw)
    except BoxError as exc:
        raise ApiError(422, "invalid_box", str(exc)) from None


def split_list_field(
    values: list[str] | None, name: str, what: str, code: str | None = None
) -> list[str]:
    """The items of a list field: repeated fields, each comma-separated or a JSON list of
    non-empty strings (``what`` they are, for the message); 400 for malformed JSON, 422
    (``code``, default ``invalid_<name>``) for a JSON value that is not such a list."""
    items: list[str] = []
    for value in values or []:
        text = value.strip()
        if not text.startswith("["):
            items.extend(x.strip() for x in text.split(",") if x.strip())
            continue
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(
                400, "malformed_json", f"form field {name!r} is not valid JSON: {exc.msg}"
            ) from exc
        if not isinstance(parsed, list) or not all(isinstance(i, str) and i for i in parsed):
            raise ApiError(
                422, code or "invalid_" + name, f"{name!r} must be a JSON list of {what}"
            )
        items.extend(parsed)
    return items


def parse_id_list(values: list[str] | None, name: str) -> list[str]:
    """Product ids from a list field (:func:`split_list_field`)."""
    return split_list_field(values, name, "product ids")


def parse_json_object(raw: str | None, name: str) -> dict[str, Any] | None:
    """A form field holding a JSON object; 400 for malformed JSON, 422 for another type."""
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"form field {name!r} is not valid JSON: {exc.msg} at character {exc.pos}",
        ) from exc
    if not isinstance(value, dict):
        raise ApiError(
            422,
            "invalid_" + name,
            f"form field {name!r} must be a JSON object such as "
            f'{{"category": "Bags"}}, got a JSON {type(value).__name__}',
        )
    return value
