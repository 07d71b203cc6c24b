"""Products and results as the API shows them: JSON-safe values, no server paths, no internal
labels.

The stored ``image`` field becomes ``image_url``; fields in :data:`INTERNAL_FIELDS` stay on the
server (they can still be filtered on). ``kind`` is one: the demo marks its catalog rows
``product`` or ``distractor`` (how LRVS-F's benchmark tells the query targets from the other
catalog items), a label that means nothing to a shopper, for whom every row is a product.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any
from urllib.parse import quote

#: Metadata fields never shown in results or products.
INTERNAL_FIELDS = frozenset({"id", "image", "kind"})
#: Media types of the image files the service serves, by suffix.
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
#: OpenAPI ``content`` of an answer that is one of those image files.
IMAGE_CONTENT = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in dict.fromkeys(IMAGE_TYPES.values())
}


def json_value(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        with contextlib.suppress(ValueError, TypeError):
            v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return str(v)


def image_url(product_id: str, metadata: dict[str, Any]) -> str | None:
    image = metadata.get("image")
    if not image:
        return None
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return image
    return f"/products/{quote(product_id, safe='')}/image"


def product_dict(product_id: str, metadata: dict[str, Any], score: float | None = None) -> dict:
    """A result / product as the API shows it."""
    out: dict[str, Any] = {"id": product_id}
    if score is not None:
        out["score"] = round(float(score), 6)
    out["category"] = json_value(metadata.get("category"))
    out["title"] = json_value(metadata.get("title"))
    out["image_url"] = image_url(product_id, metadata)
    for key, value in metadata.items():
        if key not in out and key not in INTERNAL_FIELDS:
            out[key] = json_value(value)
    return out


def hits_json(hits: list[Any]) -> list[dict[str, Any]]:
    """Results as the API shows them, each with ``weak`` (under the model's score floor)."""
    return [
        {**product_dict(h.id, dict(h.metadata), h.score), "weak": bool(getattr(h, "weak", False))}
        for h in hits
        if h.id and math.isfinite(h.score)
    ]


def attention_json(grid: Any) -> dict[str, Any]:
    rows = [[round(float(x), 5) for x in row] for row in grid]
    return {"grid": rows, "size": len(rows)}
