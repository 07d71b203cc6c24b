"""Which close-ups a zoomed query should be embedded as: one margin or two, plain or mirrored.

For each test product (its first scene, conditioned on its category) the locator's box, then
the close-ups around it at each margin of ``--grows``, each also mirrored, embedded once; every
candidate of :func:`referred.zoom.views.candidates` (one margin or two, plain or each also
mirrored) is then the mean of its close-ups' unit vectors (:func:`referred.zoom.views.pool`,
what the query path serves), measured against the split's products plus ``--counts``
distractors in ``--folds`` folds of ``--limit`` (``scripts/bench_zoom.py``'s protocol). The
true boxes' close-ups at the same margins are measured beside them (one view each). Prints
R@1 +0 / +k (mean over folds ± standard error), best first (docs/benchmarks.md, "Several
close-ups per query")::

    python scripts/bench_zoom_views.py RUN-zoom --data /tmp/s10/d20 --counts 0,5000 --folds 4
    python scripts/bench_zoom_views.py RUN-zoom --data /tmp/s10/d20 --split valid --folds 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_zoom import add_arguments, boxed_products, fold_recall

import referred
from referred.data import open_dataset
from referred.query import QueryEncoder
from referred.zoom.boxes import close_up_window
from referred.zoom.calibrate import GROWS
from referred.zoom.crop import close_up
from referred.zoom.views import Views, candidates, pool


def embed_views(model, data: Path, split: str, n: int, grows, distractors: int) -> dict:
    """The vectors this benchmark compares: {"targets", "extra", (kind, grow, flipped)}."""
    zoom, whole = QueryEncoder(model), QueryEncoder(model, zoom=False)
    products, boxes = boxed_products(data, split, n)
    if len(products) < n:
        raise SystemExit(f"{data}: {len(products)} {split} products with a boxed scene, need {n}")
    scenes = [x.complex[0].open() for x in products]
    true = [boxes[(x.complex[0].url, str(x.product_id))] for x in products]
    cats = [x.category for x in products]
    located = zoom.locate(zoom.scene_pixels(scenes), zoom.conditions(cats, n)).tolist()
    out = {"targets": whole.encode([x.simple[0].open() for x in products]).numpy()}
    extra = list(open_dataset(data).distractors(split))[:distractors]
    out["extra"] = whole.encode([d.image.open() for d in extra]).numpy()
    for grow in grows:
        cut = [close_up(s, f, grow) for s, f in zip(scenes, located)]
        out["located", grow, False] = whole.encode(cut, cats).numpy()
        out["located", grow, True] = whole.encode([ImageOps.mirror(c) for c in cut], cats).numpy()
        exact = [s.crop(close_up_window(b, s.size, grow)) for s, b in zip(scenes, true)]
        out["true", grow, False] = whole.encode(exact, cats).numpy()
    return out


def pooled(vectors: dict, kind: str, views: Views) -> np.ndarray:
    parts = [torch.from_numpy(vectors[kind, g, m]) for g, m in views.parts()]
    return pool(torch.stack(parts)).numpy()


def latency(model, data: Path, split: str, n: int) -> int:
    """Median and p90 ms of one zoomed query (locate, cut, embed, pool) by views: one close-up,
    two margins, two margins mirrored; alternated query by query, after a warm-up."""
    products, _ = boxed_products(data, split, n)
    tried = [Views((0.25,)), Views((0.25,), True), Views((0.1, 0.25)), Views((0.1, 0.25), True)]
    encoders = {v: QueryEncoder(model, zoom_views=v) for v in tried}
    times: dict[Views, list[float]] = {v: [] for v in tried}
    for i, x in enumerate(products):
        scene = x.complex[0].open()
        for views, encoder in encoders.items():
            t = time.perf_counter()
            encoder.encode([scene], x.category)
            if i:  # the first query warms up
                times[views].append(1000 * (time.perf_counter() - t))
    print(f"{len(products) - 1} single queries of {data} ({split}), one thread")
    print("| close-ups | views | median ms | p90 ms |\n|---|---:|---:|---:|")
    for views, ms in times.items():
        print(f"| {views.label()} | {views.count} | {np.median(ms):.1f} | "
              f"{np.percentile(ms, 90):.1f} |")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--counts", default="0,5000", help="distractor counts, comma-separated")
    p.add_argument("--folds", type=int, default=1, help="folds of --limit products, averaged")
    p.add_argument("--grows", default=",".join(f"{g:g}" for g in GROWS))
    p.add_argument("--max-views", type=int, default=4)
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--latency",
        type=int,
        default=0,
        help="instead: median ms of N single queries (one photo, one thread) by views",
    )
    args = p.parse_args(argv)
    if args.folds < 1 or args.limit < 1:
        p.error("--folds and --limit must be at least 1")
    torch.set_num_threads(1)
    counts = [int(c) for c in args.counts.split(",")]
    grows = [float(g) for g in args.grows.split(",")]
    model = referred.load_model(args.model)
    if getattr(model, "locator", None) is None:
        p.error(f"{args.model} has no locator (referred train --task locator)")
    if args.latency:
        return latency(model, args.data, args.split, args.latency)
    n = args.limit * args.folds
    vectors = embed_views(model, args.data, args.split, n, grows, max(counts))
    rows = {}
    for kind, tried in (
        ("located", candidates(grows, args.max_views)),
        ("true", [Views((g,)) for g in grows]),
    ):
        for views in tried:
            cells = {}
            for k in counts:
                queries = pooled(vectors, kind, views)
                mean, se = fold_recall(
                    queries, vectors["targets"], vectors["extra"][:k], args.limit
                )
                cells[f"R@1 +{k}"], cells[f"se +{k}"] = mean["R@1"], se["R@1"]
            rows[f"{kind} {views.label()}"] = {"views": views.count, **cells}
    print(f"{n} {args.split} products of {args.data} ({args.folds} folds of {args.limit}); "
          f"served by the model: {model.zoom_views.label()}")  # fmt: skip
    print("| close-ups | views | " + " | ".join(f"R@1 +{k}" for k in counts) + " |")
    print("|---|---:|" + "---:|" * len(counts))
    first = f"R@1 +{counts[0]}"
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1][first]):
        cells = [f"{100 * row[f'R@1 +{k}']:.1f} ± {100 * row[f'se +{k}']:.1f}" for k in counts]
        print(f"| {name} | {row['views']} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
