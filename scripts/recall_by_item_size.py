"""Where a trained model stops finding the exact product: test R@1 by the worn item's size.

For each test product of a synthetic dataset (``referred data synth`` records every worn
item's box in ``synth_outfits.parquet``), the query is its first scene under its condition
(the category, or for a text model the category name, as a chip sends it), the gallery the
test split's products (+0 distractors). Prints R@1 and R@10 by the item's size in the scene
(the side of the square of its box's area, ``sqrt(w·h)`` in scene pixels: a belt 60 × 9 px is
23 px) and by category::

    python scripts/recall_by_item_size.py runs/hybrid/best --data /tmp/synth [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import referred
from referred.data import open_dataset
from referred.data.boxes import read_item_boxes
from referred.model.trunk_memo import TrunkMemo
from referred.train.validate import embed_split

#: Box-side buckets (scene pixels): [lo, hi).
BUCKETS = ((0, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 10_000))


def item_boxes(data: Path) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """(scene URL, product id) → the item's box in that scene (x0, y0, x1, y1 in pixels)."""
    return read_item_boxes(data)[0]


def item_sides(data: Path) -> dict[tuple[str, str], int]:
    """(scene URL, product id) → sqrt(w·h) of the item's box in that scene (pixels)."""
    return {
        key: round(((x1 - x0) * (y1 - y0)) ** 0.5)
        for key, (x0, y0, x1, y1) in item_boxes(data).items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = referred.load_model(args.model)
    if model.trunk is not None:
        model.trunk_memo = TrunkMemo(4_000_000_000)
    dataset = open_dataset(args.data)
    products = [p for p in dataset.products(args.split) if p.complex and p.simple]
    emb = embed_split(model, dataset, args.split, max_distractors=0, texts="category")
    if len(emb.queries) != len(products):
        raise SystemExit(f"{len(products) - len(emb.queries)} products could not be embedded")
    scores = emb.queries @ emb.targets.T  # (n, n)
    ranks = (scores > np.diag(scores)[:, None]).sum(axis=1)  # 0 = first
    sides = item_sides(args.data)
    by_size: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_cat: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p, rank in zip(products, ranks):
        side = sides.get((p.complex[0].url or "", p.product_id))
        if side is None:
            continue
        lo, hi = next(b for b in BUCKETS if b[0] <= side < b[1])
        key = f"{lo:>3}-{hi} px" if hi < 10_000 else f">= {lo} px"
        by_size[key].append((int(rank), side))
        by_cat[str(p.category)].append((int(rank), side))
    out = {"by_size": {}, "by_category": {}}
    for name, groups in (("by_size", by_size), ("by_category", by_cat)):
        print(f"| {name.replace('_', ' ')} | queries | R@1 | R@10 | median size px |")
        print("|---|---:|---:|---:|---:|")
        for key, rows in sorted(groups.items()):
            r, side = np.asarray([x[0] for x in rows]), int(np.median([x[1] for x in rows]))
            r1, r10 = float((r < 1).mean()), float((r < 10).mean())
            out[name][key] = {"n": len(r), "R@1": r1, "R@10": r10, "median_side": side}
            print(f"| {key} | {len(r)} | {100 * r1:.1f} | {100 * r10:.1f} | {side} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
