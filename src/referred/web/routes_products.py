"""Product endpoints: read one product and its image; add or delete one (admin token).

A product id is only ever a key into the index, never a path. Product images are read from
the ``image`` metadata field, resolved under the configured image roots and refused when the
resolved file (symlinks followed) lies outside them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response

from referred.web import schemas
from referred.web.routes import (
    IMAGE_FIELD,
    IMAGE_SUFFIXES,
    match_category,
    multipart_body,
    product_dict,
    user_errors,
)
from referred.web.routes_deps import (
    CatalogDep,
    FormDep,
    RunnerDep,
    SearcherDep,
    SearchRunner,
    SettingsDep,
    require_admin,
)
from referred.web.schemas import ApiError
from referred.web.settings import Settings
from referred.web.uploads import (
    decode_image,
    json_object_field,
    read_upload,
    sniff_format,
    text_field,
)

router = APIRouter(tags=["catalog"])
MAX_ID_CHARS = 256
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")
_EXT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}


def check_id(product_id: str) -> str:
    if not product_id or len(product_id) > MAX_ID_CHARS:
        raise ApiError(
            422, "invalid_product_id", f"a product id has 1 to {MAX_ID_CHARS} characters"
        )
    if _BAD_ID.search(product_id):
        raise ApiError(422, "invalid_product_id", "a product id cannot contain control characters")
    return product_id


async def lookup(searcher: Any, runner: SearchRunner, product_id: str) -> dict[str, Any]:
    check_id(product_id)
    try:
        return dict(await runner.call(searcher.product, product_id))
    except KeyError:
        raise ApiError(404, "unknown_product", f"no product with id {product_id[:80]!r}") from None


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


@router.get("/products/{product_id:path}/image", summary="The product's image")
async def product_image(
    product_id: str,
    searcher: SearcherDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> Response:
    meta = await lookup(searcher, runner, product_id)
    value = meta.get("image")
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return RedirectResponse(value, status_code=307)
    path = resolve_image(value, image_roots(settings)) if isinstance(value, str) else None
    if path is None:
        raise ApiError(
            404,
            "image_not_available",
            f"product {product_id[:80]!r} has no image this service can serve",
        )
    media = IMAGE_SUFFIXES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.get(
    "/products/{product_id:path}", response_model=schemas.Product, summary="One product's metadata"
)
async def get_product(
    product_id: str,
    searcher: SearcherDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    return product_dict(product_id, await lookup(searcher, runner, product_id))


@router.post(
    "/products",
    response_model=schemas.Product,
    status_code=201,
    dependencies=[Depends(require_admin)],
    summary="Add or replace a product (needs the admin bearer token)",
    openapi_extra={
        **multipart_body(
            {
                "image": IMAGE_FIELD,
                "id": {"type": "string"},
                "category": {"type": "string"},
                "title": {"type": "string"},
                "metadata": {"type": "string", "description": "JSON object of extra fields"},
            },
            ["image", "id"],
        ),
        "security": [{"bearer": []}],
    },
)
async def add_product(
    form: FormDep,
    searcher: SearcherDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    product_id = check_id((text_field(form, "id") or "").strip())
    metadata = json_object_field(form, "metadata") or {}
    for name in ("category", "title"):
        value = text_field(form, name)
        if value is not None and value.strip():
            metadata[name] = value.strip()
    if "id" in metadata:
        raise ApiError(422, "invalid_metadata", "'id' goes in its own form field, not metadata")
    if metadata.get("category") is not None:
        metadata["category"] = match_category(str(metadata["category"]), searcher.category_choices)
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
    data = await read_upload(form, "image")
    image = await runner.call(decode_image, data, settings.max_pixels)
    if settings.upload_dir is not None and image_value is None:
        metadata["image"] = await runner.call(store_upload, data, settings)
    with user_errors():
        count = await runner.write(catalog.upsert, product_id, image, metadata)
    out = product_dict(product_id, metadata)
    out["products"] = count
    return out


def store_upload(data: bytes, settings: Settings) -> str:
    """Save an uploaded image under ``upload_dir`` by content hash; the name, for metadata."""
    assert settings.upload_dir is not None
    fmt, _, _ = sniff_format(data, settings.max_pixels)
    name = hashlib.sha256(data).hexdigest()[:32] + _EXT.get(fmt, ".img")
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    path = settings.upload_dir / name
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return name


@router.delete(
    "/products/{product_id:path}",
    response_model=schemas.Deleted,
    dependencies=[Depends(require_admin)],
    summary="Delete a product (needs the admin bearer token)",
    openapi_extra={"security": [{"bearer": []}]},
)
async def delete_product(
    product_id: str,
    catalog: CatalogDep,
    runner: RunnerDep,
) -> dict[str, Any]:
    check_id(product_id)
    try:
        count = await runner.write(catalog.delete, product_id)
    except KeyError:
        raise ApiError(404, "unknown_product", f"no product with id {product_id[:80]!r}") from None
    return {"id": product_id, "deleted": True, "products": count}
