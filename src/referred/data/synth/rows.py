"""Rows of the files ``data synth`` writes: Hugging Face metadata, scenes, products.

Besides the published metadata columns, two tables describe what was drawn:
``synth_outfits.parquet`` (one row per scene image: the products visible in it, their boxes
and visible shares, the style) and ``synth_products.parquet`` (one row per product or
distractor photo: the attributes that make it unique, and its style).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from referred.data.files import url_key
from referred.data.synth.attributes import ItemSpec
from referred.data.synth.scene import SceneImage

OUTFITS_FILE = "synth_outfits.parquet"
PRODUCTS_FILE = "synth_products.parquet"
_BOX = pa.list_(pa.int32(), 4)
OUTFIT_SCHEMA = pa.schema(
    [
        ("URL", pa.string()),
        ("TYPE", pa.string()),
        ("OUTFIT_ID", pa.int64()),
        ("SPLIT", pa.string()),
        ("PRODUCT_IDS", pa.list_(pa.int64())),
        ("CATEGORIES", pa.list_(pa.string())),
        ("STYLE", pa.string()),
        ("WIDTH", pa.int64()),
        ("HEIGHT", pa.int64()),
        ("BOXES", pa.list_(_BOX)),
        ("UNIT_BOXES", pa.list_(pa.list_(_BOX))),
        ("VISIBLE", pa.list_(pa.float32())),
    ]
)
PRODUCT_SCHEMA = pa.schema(
    [
        ("URL", pa.string()),
        ("PRODUCT_ID", pa.int64()),
        ("ROLE", pa.string()),
        ("SPLIT", pa.string()),
        ("CATEGORY", pa.string()),
        ("VARIANT", pa.string()),
        ("STYLE", pa.string()),
        ("COLOUR", pa.string()),
        ("COLOUR_NAME", pa.string()),
        ("COLOUR2", pa.string()),
        ("PATTERN", pa.string()),
        ("TEXTURE", pa.string()),
        ("MOTIF", pa.string()),
        ("TRIM", pa.string()),
    ]
)
#: split → (SPLIT of gallery-side rows, SPLIT of query-side rows)
SPLIT_LABELS = {
    "train": ("train", "train"),
    "valid": ("val_gallery", "val_query"),
    "test": ("test_gallery", "test_query"),
}


def _pseudo(url: str, salt: int, scale: float) -> float:
    """A deterministic pseudo-random value in [0, scale) derived from a URL."""
    return round(((url_key(url) >> salt) % 10_000) / 10_000 * scale, 4)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class Rows:
    """Metadata rows in the Hugging Face columns, with a running ``INDEX_SRC``."""

    def __init__(self, seed: int, size: int, scene_size: int) -> None:
        self.seed, self.size, self.scene_size = seed, size, scene_size
        self._index: dict[str, int] = {}

    def _base(self, url: str, side: int) -> dict[str, Any]:
        index = self._index.setdefault(url, len(self._index))
        return {
            "URL": url,
            "WIDTH": side,
            "HEIGHT": side,
            "language": "en",
            "punsafe": _pseudo(url, 0, 0.05),
            "pwatermark": _pseudo(url, 16, 0.4),
            "INDEX_SRC": index,
        }

    def item(self, url: str, pid: int, item: ItemSpec, split_label: str) -> dict[str, Any]:
        """Row of an image of ``item`` alone (a product's SIMPLE image or a distractor)."""
        row = self._base(url, self.size)
        row.update(
            TEXT=item.title(),
            ENG_TEXT=item.title(),
            TYPE="SIMPLE",
            PRODUCT_ID=pid,
            SPLIT=split_label,
            CATEGORY=item.category,
            blip2_caption1=item.caption(),
            blip2_caption2=item.caption2(),
        )
        return row

    def scene(
        self, url: str, pid: int, kind: str, items: list[ItemSpec], split_label: str
    ) -> dict[str, Any]:
        """Row of a scene image used as a complex image of product ``pid``."""
        captions = [i.caption() for i in items]
        worn = ", ".join(captions[:-1]) + f" and {captions[-1]}"
        text = "Outfit: " + "; ".join(captions)
        row = self._base(url, self.scene_size)
        row.update(
            TEXT=text,
            ENG_TEXT=text,
            TYPE=kind,
            PRODUCT_ID=pid,
            SPLIT=split_label,
            CATEGORY=None,
            blip2_caption1=f"a person wearing {worn}",
            blip2_caption2=f"a person in a {len(items)}-piece outfit",
        )
        return row


def outfit_row(
    url: str,
    outfit_id: int,
    split: str,
    scene: SceneImage,
    product_ids: tuple[int, ...],
    items: tuple[ItemSpec, ...],
    side: int,
) -> dict[str, Any]:
    """The ``synth_outfits.parquet`` row of one scene image."""
    return {
        "URL": url,
        "TYPE": "PARTIAL_COMPLEX" if scene.partial else "COMPLEX",
        "OUTFIT_ID": outfit_id,
        "SPLIT": split,
        "PRODUCT_IDS": [product_ids[i] for i in scene.visible],
        "CATEGORIES": [items[i].category for i in scene.visible],
        "STYLE": scene.style,
        "WIDTH": side,
        "HEIGHT": side,
        "BOXES": [list(b) for b in scene.boxes],
        "UNIT_BOXES": [[list(b) for b in units] for units in scene.unit_boxes],
        "VISIBLE": list(scene.visibility),
    }


def product_row(
    url: str, pid: int, role: str, split: str, item: ItemSpec, style: str
) -> dict[str, Any]:
    """The ``synth_products.parquet`` row of one product or distractor photo."""
    return {
        "URL": url,
        "PRODUCT_ID": pid,
        "ROLE": role,
        "SPLIT": split,
        "CATEGORY": item.category,
        "VARIANT": item.variant,
        "STYLE": style,
        "COLOUR": _hex(item.colour),
        "COLOUR_NAME": item.colour_name,
        "COLOUR2": _hex(item.colour2),
        "PATTERN": item.pattern,
        "TEXTURE": item.texture,
        "MOTIF": item.motif,
        "TRIM": item.trim,
    }
