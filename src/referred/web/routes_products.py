"""Product endpoints: read one product and its image; add or delete one (admin token).

A product id is only ever a key into the index, never a path. Ids may hold slashes (send them
URL-encoded), so the id path parameter uses a convertor that cannot end in ``/image``:
``/products/0/image`` is always the image of product ``0`` (a ``DELETE`` there is 405), never
the product ``0/image``, and such ids are refused when a product is added. Product images are
read from the ``image`` metadata field, resolved under the configured image roots and refused
when the resolved file (symlinks followed) lies outside them.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import WithJsonSchema
from starlette.convertors import Convertor, register_url_convertor

from referred.web import schemas
from referred.web.condition import resolve_category
from referred.web.errors import responses
from referred.web.forms import (
    CategoryField,
    FormRoute,
    ImageFile,
    MetadataField,
    parse_json_object,
)
from referred.web.results import IMAGE_CONTENT, IMAGE_TYPES, product_dict
from referred.web.routes_deps import (
    CatalogDep,
    RunnerDep,
    SearcherDep,
    SearchRunner,
    SettingsDep,
    require_admin,
)
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import decode_image, read_image, sniff_format

MAX_ID_CHARS = 256
#: Control characters (C0, DEL, C1), never in an id; and the spaces an id may not start or end
#: with: the same classes in the code and in the schema's patterns (JSON Schema's regex ``\s``
#: and Python's ``str.strip`` disagree on some characters, so neither is used).
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_BAD_ID = re.compile(f"[{_CONTROL}]")
_EDGE_SPACE = re.compile(f"^[{_SPACE}]|[{_SPACE}]$")
_EXT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}
_SUB_RESOURCE = "/image"


class ProductIdConvertor(Convertor[str]):
    """A product id in a path: anything (slashes included) not ending in ``/image``."""

    regex = r".+(?<!/image)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("product_id", ProductIdConvertor())
router = APIRouter(tags=["catalog"], route_class=FormRoute)
ProductId = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "pattern": f"^[^{_CONTROL}]+(?<!/image)$",
            "description": "URL-encoded; no control characters, cannot end in '/image'",
        }
    ),
    PathParam(),
]
IdField = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "pattern": f"^(?![{_SPACE}])[^{_CONTROL}]+(?<![{_SPACE}])(?<!/image)$",
            "description": "the product id (an existing one is replaced); no control "
            "characters, no surrounding spaces, cannot end in '/image'",
        }
    ),
    Form(),
]
TitleField = Annotated[
    str | None, WithJsonSchema({"type": "string", "description": "the product's title"}), Form()
]


def check_id(product_id: str) -> str:
    """``product_id`` if it may name a product; 422 saying which rule it breaks."""
    if not product_id or len(product_id) > MAX_ID_CHARS:
        raise ApiError(
            422, "invalid_product_id", f"a product id has 1 to {MAX_ID_CHARS} characters"
        )
    if _BAD_ID.search(product_id):
        raise ApiError(422, "invalid_product_id", "a product id cannot contain control characters")
    return product_id


def check_new_id(product_id: str) -> str:
    """:func:`check_id`, and the rules for a new id: no surrounding spaces, not ``…/image``
    (ids that break them cannot exist, so reading or deleting one is just a 404)."""
    check_id(product_id)
    if _EDGE_SPACE.search(product_id):
        raise ApiError(422, "invalid_product_id", "a product id cannot start or end with a space")
    if product_id.endswith(_SUB_RESOURCE):
        raise ApiError(
            422,
            "invalid_product_id",
            f"a product id cannot end in {_SUB_RESOURCE!r}: /products/ID{_SUB_RESOURCE} is the "
            "product's image",
        )
    return product_id


async def lookup(searcher: Any, runner: SearchRunner, product_id: str) -> dict[str, Any]:
    check_id(product_id)
    return dict(await runner.call(searcher.product, product_id))  # UnknownProductError: 404


def image_roots(settings: Settings) -> list[Path]:
    return [p.resolve() for p in (settings.image_root, settings.upload_dir) if p is not None]


def resolve_image(value: str, roots: list[Path]) -> Path | None:
    """The file ``value`` names inside one of ``roots``, or None (never a file elsewhere)."""
    if not value or "\x00" in value:
        return None
    for root in roots:
        try:
            path = (root / value).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


READ_ERRORS = (404, 422, 503)
WRITE_ERRORS = (400, 401, 403, 413, 415, 422, 503)


@router.get(
    "/products/{product_id:product_id}/image",
    summary="The product's image",
    response_class=Response,
    responses={
        200: {"description": "the image file", "content": IMAGE_CONTENT},
        307: {"description": "the image is elsewhere: see the Location header"},
        **responses(*READ_ERRORS),
    },
)
async def product_image(
    product_id: ProductId,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> Response:
    meta = await lookup(searcher, runner, product_id)
    value = meta.get("image")
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return RedirectResponse(value, status_code=307)
    path = resolve_image(value, image_roots(settings)) if isinstance(value, str) else None
    if path is None or path.suffix.lower() not in IMAGE_TYPES:
        raise ApiError(
            404,
            "image_not_available",
            f"product {product_id[:80]!r} has no image this service can serve",
        )
    media = IMAGE_TYPES[path.suffix.lower()]
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.get(
    "/products/{product_id:product_id}",
    response_model=schemas.Product,
    summary="One product's metadata",
    responses=responses(*READ_ERRORS),
)
async def get_product(product_id: ProductId, searcher: SearcherDep, runner: RunnerDep) -> dict:
    return product_dict(product_id, await lookup(searcher, runner, product_id))


@router.post(
    "/products",
    response_model=schemas.Product,
    status_code=201,
    dependencies=[Depends(require_admin)],
    summary="Add or replace a product (needs the admin bearer token)",
    responses=responses(*WRITE_ERRORS),
    openapi_extra={"security": [{"bearer": []}]},
)
async def add_product(
    image: ImageFile,
    id: IdField,
    searcher: SearcherDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    runner: RunnerDep,
    category: CategoryField = None,
    title: TitleField = None,
    metadata: MetadataField = None,
) -> dict[str, Any]:
    product_id = check_new_id(id)
    fields = product_metadata(parse_json_object(metadata, "metadata") or {}, category, title)
    if fields.get("category") is not None:
        fields["category"] = resolve_category(str(fields["category"]), searcher)
    data = await read_image(image)
    photo = await runner.call(decode_image, data, settings.max_pixels)
    if settings.upload_dir is not None and fields.get("image") is None:
        fields["image"] = await runner.call(store_upload, data, settings)
    count = await runner.call(catalog.upsert, product_id, photo, fields)
    return {**product_dict(product_id, fields), "products": count}


def product_metadata(
    metadata: dict[str, Any], category: str | None, title: str | None
) -> dict[str, Any]:
    """The metadata of a new product: the JSON fields, then ``category`` and ``title``."""
    for name, value in (("category", category), ("title", title)):
        if value is not None and value.strip():
            metadata[name] = value.strip()
    if "id" in metadata:
        raise ApiError(422, "invalid_metadata", "'id' goes in its own form field, not metadata")
    image_value = metadata.get("image")
    if image_value is not None and not (
        isinstance(image_value, str) and image_value.startswith(("http://", "https://"))
    ):
        raise ApiError(
            422,
            "invalid_metadata",
            "metadata 'image' may only be an http(s) URL; the upload is stored itself",
        )
    for key, value in metadata.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ApiError(
                422,
                "invalid_metadata",
                f"metadata field {key!r} must be a string, number or boolean",
            )
    return metadata


def store_upload(data: bytes, settings: Settings) -> str:
    """Save an uploaded image under ``upload_dir`` by content hash; the name, for metadata."""
    assert settings.upload_dir is not None
    fmt, _, _ = sniff_format(data, settings.max_pixels)
    name = hashlib.sha256(data).hexdigest()[:32] + _EXT.get(fmt, ".img")
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    path = settings.upload_dir / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")  # one per writer
        tmp.write_bytes(data)
        tmp.replace(path)
    return name


@router.delete(
    "/products/{product_id:product_id}",
    response_model=schemas.Deleted,
    dependencies=[Depends(require_admin)],
    summary="Delete a product (needs the admin bearer token)",
    responses=responses(401, 403, *READ_ERRORS),
    openapi_extra={"security": [{"bearer": []}]},
)
async def delete_product(
    product_id: ProductId, catalog: CatalogDep, runner: RunnerDep
) -> dict[str, Any]:
    check_id(product_id)
    count = await runner.call(catalog.delete, product_id)  # UnknownProductError: 404
    return {"id": product_id, "deleted": True, "products": count}
