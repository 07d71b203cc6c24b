"""Region queries on a synthetic test split: the scene with a condition against crops of the item.

``referred data synth`` records the box of every worn item in ``synth_outfits.parquet``. For
each test product, its first scene is queried five ways, all through the one query path
(:class:`referred.query.QueryEncoder`, crops by :mod:`referred.region`):

* ``scene + condition``: the whole scene, conditioned on the product's category (a text model
  gets the category name, as a chip sends it);
* ``true box, unconditioned``: the crop of the item's box, no condition (the LRVS-F paper's
  "crop, then embed" baseline with a perfect detector);
* ``true box + condition``;
* ``loose box + condition`` / ``loose box, unconditioned``: the box grown by ``--loose`` of its
  width and height on every side (clipped to the scene), as a hurried shopper draws it.

The gallery is the split's products (unconditioned), plus ``--distractors`` of the split's
distractors. Prints R@1 / R@10 per way as a Markdown table::

    python scripts/bench_regions.py RUN/best --data DATA [--limit 500] [--distractors 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_feedback import ranks_of
from recall_by_item_size import item_boxes

import referred
from referred.data import open_dataset
from referred.query import QueryEncoder
from referred.region import crop


def loose(box: tuple[float, float, float, float], grow: float, size: tuple[int, int]):
    """``box`` grown by ``grow`` × its width/height on every side, clipped to ``size``."""
    x0, y0, x1, y1 = box
    dx, dy = grow * (x1 - x0), grow * (y1 - y0)
    w, h = size
    return (max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(w), x1 + dx), min(float(h), y1 + dy))


def recall(queries: np.ndarray, targets: np.ndarray, ks=(1, 10)) -> dict[str, float]:
    """Query i's product is target i; the rest of ``targets`` are other products/distractors."""
    ranks = ranks_of(queries, targets)
    return {f"R@{k}": float((ranks < k).mean()) for k in ks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=500, help="test products used (0: all)")
    p.add_argument("--distractors", type=int, default=0)
    p.add_argument("--loose", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = referred.load_model(args.model)
    encoder = QueryEncoder(model)
    dataset = open_dataset(args.data)
    boxes = item_boxes(args.data)
    products = [
        x
        for x in dataset.products(args.split)
        if x.simple and x.complex and (x.complex[0].url, x.product_id) in boxes
    ]
    if args.limit:
        products = products[: args.limit]
    scenes = [x.complex[0].open() for x in products]
    true = [boxes[(x.complex[0].url, x.product_id)] for x in products]
    conds = [x.category for x in products]
    ways = {
        "scene + condition": (scenes, conds),
        "true box, unconditioned": ([crop(s, b) for s, b in zip(scenes, true)], None),
        "true box + condition": ([crop(s, b) for s, b in zip(scenes, true)], conds),
        f"loose box (+{args.loose:g} a side) + condition": (
            [crop(s, loose(b, args.loose, s.size)) for s, b in zip(scenes, true)],
            conds,
        ),
        f"loose box (+{args.loose:g} a side), unconditioned": (
            [crop(s, loose(b, args.loose, s.size)) for s, b in zip(scenes, true)],
            None,
        ),
    }
    targets = encoder.encode([x.simple[0].open() for x in products]).numpy()
    if args.distractors:
        extra = [d.image.open() for d in list(dataset.distractors(args.split))[: args.distractors]]
        targets = np.concatenate([targets, encoder.encode(extra).numpy()])
    rows = {}
    print(f"{len(products)} test products of {args.data} (+{args.distractors} distractors)")
    print("| query | R@1 | R@10 |\n|---|---:|---:|")
    for name, (images, c) in ways.items():
        q = encoder.encode(images, c).numpy()
        rows[name] = recall(q, targets)
        print(f"| {name} | {100 * rows[name]['R@1']:.1f} | {100 * rows[name]['R@10']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
