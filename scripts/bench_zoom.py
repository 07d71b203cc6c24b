"""Zoom measured: the whole scene, the close-up of the true box, the close-up the locator finds.

A worn item is a few percent of a 224-px scene, so a CondViT reading the whole scene gives it a
token or two. Zoom (:mod:`referred.zoom`) embeds the close-up around the item instead: the
CondViT is trained on close-ups of the true boxes (``referred data closeups``), a locator fitted
beside it finds the box at query time (``referred train --task locator``). For each test
product (its first scene, conditioned on its category), three queries through the one query
path (:class:`referred.query.QueryEncoder`):

* ``whole scene``: ``zoom=False``, what a model without a locator sees;
* ``true box close-up``: the close-up around the generator's box (a perfect locator), with
  the margin the close-ups were cut with for training (``--train-grow``, default 0.25);
* ``located close-up (as served)``: the query path as served, the locator's box, the
  close-ups cut from the photo at full resolution with the locator's views (margins, maybe
  mirrored, chosen on the validation split by ``referred train --task locator``), pooled;
* ``located close-up, training margin``: the same box, one close-up at the training margin
  (what the query path did before the close-ups were chosen by recall);
* ``located close-up from pixels``: the same cut from the preprocessed square (what callers
  holding only pixels get: the benchmark's and validation's streams, ``referred embed``).

The gallery is the split's products (unconditioned) plus ``--counts`` distractors; the same on
the held-out rendering style (``DATA/heldout_style``) when present. ``--folds K`` takes
K × ``--limit`` products and measures each fold of ``--limit`` against its own products and the
same distractors: the figure is the folds' mean (the protocol of one ``--limit``-product test,
with about 1/√K of its noise), their standard error printed beside it. Prints R@1 / R@10 and
the locator's IoU (docs/benchmarks.md, "Zoom")::

    referred data closeups /tmp/h13/d20 /tmp/zoom/d20
    referred train --data /tmp/zoom/d20 --out /tmp/zoom/cat --model hybrid-lite0 \\
        --conditioning category --threads 1 --max-minutes 50 --same-category 16
    referred train --task locator --data /tmp/h13/d20 --model /tmp/zoom/cat/best \\
        --out /tmp/zoom/cat-zoom --threads 1
    python scripts/bench_zoom.py /tmp/zoom/cat-zoom --data /tmp/h12/d5k1 --counts 0,5000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_regions import recall

import referred
from referred.data import open_dataset
from referred.data.boxes import read_item_boxes
from referred.query import QueryEncoder
from referred.zoom.boxes import GROW, close_up_window, from_square, iou
from referred.zoom.crop import close_up


def from_pixels(encoder: QueryEncoder, scenes: list, cats: list[str]) -> torch.Tensor:
    """Queries through ``QueryEncoder.forward`` (preprocessed pixels), 32 at a time."""
    out = []
    for i in range(0, len(scenes), 32):
        chunk = cats[i : i + 32]
        pixels = encoder.pixels(scenes[i : i + 32])
        out.append(encoder.forward(pixels, encoder.conditions(chunk, len(chunk))))
    return torch.cat(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every zoom benchmark takes: the model, the data, which products."""
    p.add_argument("model", type=Path, help="a model folder with its locator")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=500)


def boxed_products(data: Path, split: str, limit: int) -> tuple[list, dict]:
    """(up to ``limit`` products of ``split`` with a photo and a first scene whose box is
    known, the boxes)."""
    boxes, _ = read_item_boxes(data)
    products = [
        x
        for x in open_dataset(data).products(split)
        if x.simple and x.complex and (x.complex[0].url, str(x.product_id)) in boxes
    ][:limit]
    return products, boxes


def fold_recall(queries: np.ndarray, products: np.ndarray, extra: np.ndarray, size: int):
    """Recall of each fold of ``size`` queries against its own products and all of ``extra``:
    ({"R@1": mean over folds, ...}, {"R@1": standard error of that mean, ...})."""
    folds = [
        recall(queries[i : i + size], np.concatenate([products[i : i + size], extra]))
        for i in range(0, len(queries), size)
    ]
    mean = {m: float(np.mean([f[m] for f in folds])) for m in folds[0]}
    if len(folds) < 2:
        return mean, {m: float("nan") for m in mean}
    se = {m: float(np.std([f[m] for f in folds], ddof=1) / np.sqrt(len(folds))) for m in mean}
    return mean, se


def measure(
    model,
    data: Path,
    split: str,
    limit: int,
    counts: list[int],
    train_grow: float = GROW,
    folds: int = 1,
) -> dict:
    zoom, whole = QueryEncoder(model), QueryEncoder(model, zoom=False)
    products, boxes = boxed_products(data, split, limit * folds)
    if folds > 1 and len(products) < limit * folds:
        raise SystemExit(
            f"{data}: {len(products)} {split} products with a boxed scene, "
            f"{folds} folds of {limit} need {limit * folds}"
        )
    size = limit if folds > 1 else len(products)  # one fold: up to --limit, as many as there are
    scenes = [x.complex[0].open() for x in products]
    true = [boxes[(x.complex[0].url, str(x.product_id))] for x in products]
    cats = [x.category for x in products]
    located = zoom.locate(zoom.scene_pixels(scenes), zoom.conditions(cats, len(cats)))
    ious = [iou(from_square(f, s.size), b) for f, s, b in zip(located.tolist(), scenes, true)]
    queries = {
        "whole scene": whole.encode(scenes, cats),
        "true box close-up": whole.encode(
            [s.crop(close_up_window(b, s.size, train_grow)) for s, b in zip(scenes, true)], cats
        ),
        "located close-up (as served)": zoom.encode(scenes, cats),
        "located close-up, training margin": whole.encode(
            [close_up(s, f, train_grow) for s, f in zip(scenes, located.tolist())], cats
        ),
        "located close-up from pixels": from_pixels(zoom, scenes, cats),
    }
    targets = whole.encode([x.simple[0].open() for x in products]).numpy()
    extra = list(open_dataset(data).distractors(split))[: max(counts)]
    others = np.zeros((0, targets.shape[1]), targets.dtype)
    if extra:
        others = whole.encode([d.image.open() for d in extra]).numpy()
    row = {
        "products": size,
        "folds": folds,
        "locator IoU": float(np.mean(ious)),
        "IoU > 0.5": float(np.mean(np.array(ious) > 0.5)),
        "views served": zoom.zoom_views.label(),
    }
    for way, q in queries.items():
        for k in counts:
            mean, se = fold_recall(q.numpy(), targets, others[:k], size)
            row[f"{way} +{k}"] = mean
            if folds > 1:
                row[f"{way} +{k} se"] = se
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--counts", default="0", help="distractor counts, comma-separated")
    p.add_argument("--train-grow", type=float, default=GROW, help="the close-ups' training margin")
    p.add_argument("--folds", type=int, default=1, help="folds of --limit products, averaged")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.folds < 1 or args.limit < 1:
        p.error("--folds and --limit must be at least 1")
    torch.set_num_threads(1)
    counts = [int(c) for c in args.counts.split(",")]
    model = referred.load_model(args.model)
    if getattr(model, "locator", None) is None:
        p.error(f"{args.model} has no locator (referred train --task locator)")
    results = {}
    for name, data in (("in style", args.data), ("held-out style", args.data / "heldout_style")):
        if not data.is_dir():
            continue
        row = results[name] = measure(
            model, data, args.split, args.limit, counts, args.train_grow, args.folds
        )
        folds = f" (mean of {args.folds} folds ± its standard error)" if args.folds > 1 else ""
        print(f"\n{name}: {row['products']} {args.split} products of {data}{folds}; locator IoU "
              f"{row['locator IoU']:.3f} (> 0.5 for {100 * row['IoU > 0.5']:.1f}%), close-ups "
              f"served {row['views served']}")  # fmt: skip
        print("| query | " + " | ".join(f"R@1 +{k} | R@10 +{k}" for k in counts) + " |")
        print("|---|" + "---:|---:|" * len(counts))
        for way in [w.rsplit(" +", 1)[0] for w in row if w.endswith(f" +{counts[0]}")]:
            cells = [
                _cell(row[f"{way} +{k}"][m], row.get(f"{way} +{k} se", {}).get(m))
                for k in counts
                for m in ("R@1", "R@10")
            ]
            print(f"| {way} | " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _cell(value: float, se: float | None) -> str:
    return f"{100 * value:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


if __name__ == "__main__":
    sys.exit(main())
