"""Where each worn item is in its scene: boxes for zoom (:mod:`referred.zoom`).

A box belongs to a (scene, product) pair: the scene's URL as the dataset records it, the
product worn in it, and the item's box ``(x0, y0, x1, y1)`` in pixels of the scene. Two
sources are read: ``synth_outfits.parquet`` (``referred data synth`` records the box of every
item it draws) and, for any other dataset, ``item_boxes.csv`` in its root with the columns
``URL, PRODUCT_ID, X0, Y0, X1, Y1`` (from a detector or from annotations; LRVS-F has none).
"""

from __future__ import annotations

import csv
from pathlib import Path

#: The boxes file of a dataset that is not synthetic, and its columns.
BOXES_CSV = "item_boxes.csv"
BOX_COLUMNS = ("URL", "PRODUCT_ID", "X0", "Y0", "X1", "Y1")

Boxes = dict[tuple[str, str], tuple[float, float, float, float]]


def read_item_boxes(root: str | Path) -> tuple[Boxes, str]:
    """({(scene URL, product id): (x0, y0, x1, y1)}, the file they came from). ValueError
    naming both accepted files when the dataset has neither, or the line of a bad box."""
    from referred.data.synth import OUTFITS_FILE

    root = Path(root)
    if (root / OUTFITS_FILE).is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(root / OUTFITS_FILE, columns=["URL", "PRODUCT_IDS", "BOXES"])
        d = table.to_pydict()
        out: Boxes = {}
        for url, ids, boxes in zip(d["URL"], d["PRODUCT_IDS"], d["BOXES"]):
            for pid, box in zip(ids, boxes):
                out[(url, str(pid))] = tuple(float(v) for v in box)  # type: ignore[assignment]
        return out, OUTFITS_FILE
    if (root / BOXES_CSV).is_file():
        return _read_csv(root / BOXES_CSV), BOXES_CSV
    raise ValueError(
        f"{root} has no item boxes: expected {OUTFITS_FILE} (written by referred data synth) "
        f"or {BOXES_CSV} (columns {', '.join(BOX_COLUMNS)}; pixels of the scene)"
    )


def _read_csv(path: Path) -> Boxes:
    out: Boxes = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in BOX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; it needs {list(BOX_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                x0, y0, x1, y1 = (float(row[c]) for c in BOX_COLUMNS[2:])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: a box value is not a number") from None
            if not (x0 < x1 and y0 < y1) or min(x0, y0) < 0:
                raise ValueError(
                    f"{path}, line {line}: a box needs 0 <= X0 < X1 and 0 <= Y0 < Y1, "
                    f"got {(x0, y0, x1, y1)}"
                )
            out[(row["URL"], str(row["PRODUCT_ID"]))] = (x0, y0, x1, y1)
    return out
