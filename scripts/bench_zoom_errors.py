"""What the locator's errors cost a zooming model: R@1 of close-ups around altered boxes.

For each test product (its first scene, conditioned on its category; gallery = the split's
product photos), the close-up the CondViT embeds is cut around: the true box; the located
box; the located centre with the true size and the true centre with the located size (which
error costs what); the true box scaled or moved (how the model answers a window too large,
too small or off-centre); the located box scaled. All close-ups use the training margin
(``--grow``, default 0.25) and are cut from the photo at full resolution. Then the share of
located centres inside the true box, and R@1 by the true box's size and by category
(docs/benchmarks.md, "What the locator's errors cost")::

    python scripts/bench_zoom_errors.py /tmp/s10/runs/base-zoom --data /tmp/s10/d5k1
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_zoom import add_arguments, boxed_products

import referred
from referred.query import QueryEncoder
from referred.zoom.boxes import GROW, from_square, iou, to_square
from referred.zoom.crop import close_up


def _scaled(boxes: list, f: float) -> list:
    return [[cx, cy, w * f, h * f] for cx, cy, w, h in boxes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--grow", type=float, default=GROW, help="the close-ups' training margin")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = referred.load_model(args.model)
    if getattr(model, "locator", None) is None:
        p.error(f"{args.model} has no locator (referred train --task locator)")
    zoom, whole = QueryEncoder(model), QueryEncoder(model, zoom=False)
    products, boxes = boxed_products(args.data, args.split, args.limit)
    scenes = [x.complex[0].open() for x in products]
    cats = [x.category for x in products]
    true = [list(to_square(boxes[(x.complex[0].url, str(x.product_id))], s.size))
            for x, s in zip(products, scenes)]  # fmt: skip
    found = zoom.locate(zoom.scene_pixels(scenes), zoom.conditions(cats, len(cats))).tolist()
    targets = whole.encode([x.simple[0].open() for x in products]).numpy()

    def hits(fracs: list) -> np.ndarray:
        crops = [close_up(s, f, args.grow) for s, f in zip(scenes, fracs)]
        q = whole.encode(crops, cats).numpy()
        return (q @ targets.T).argmax(1) == np.arange(len(q))

    windows = {
        "true box": true,
        "located box": found,
        "located centre, true size": [f[:2] + t[2:] for f, t in zip(found, true)],
        "true centre, located size": [t[:2] + f[2:] for f, t in zip(found, true)],
        **{f"true box × {f:g}": _scaled(true, f) for f in (0.8, 0.9, 1.1, 1.3)},
        "true box moved by ¼ of its width": [[t[0] + t[2] / 4, *t[1:]] for t in true],
        **{f"located box × {f:g}": _scaled(found, f) for f in (0.75, 0.8, 0.85, 0.9, 1.1)},
    }
    print(f"{len(products)} {args.split} products of {args.data}, margin {args.grow:g}")
    print("| close-up around | R@1 +0 |\n|---|---:|")
    got = {}
    for name, fracs in windows.items():
        got[name] = hits(fracs)
        print(f"| {name} | {100 * got[name].mean():.1f} |", flush=True)
    unit = (1, 1)
    ious = np.array([iou(from_square(f, unit), from_square(t, unit)) for f, t in zip(found, true)])
    inside = np.array([abs(f[0] - t[0]) <= t[2] / 2 and abs(f[1] - t[1]) <= t[3] / 2
                       for f, t in zip(found, true)])  # fmt: skip
    ratio = np.log([max(f[2:]) / max(t[2:]) for f, t in zip(found, true)])
    print(f"\nIoU {ious.mean():.3f} (> 0.5: {100 * (ious > 0.5).mean():.1f}%), located centre "
          f"inside the true box {100 * inside.mean():.1f}%; log(located / true longer side): "
          f"mean {ratio.mean():+.3f}, mean |.| {np.abs(ratio).mean():.3f}")  # fmt: skip
    print("\n| pairs | n | R@1 true box | R@1 located |\n|---|---:|---:|---:|")
    for name, m in (("centre inside", inside), ("centre outside", ~inside),
                    ("IoU > 0.5", ious > 0.5), ("IoU ≤ 0.5", ious <= 0.5)):  # fmt: skip
        t, f = got["true box"][m], got["located box"][m]
        print(f"| {name} | {m.sum()} | {100 * t.mean():.1f} | {100 * f.mean():.1f} |")
    side = np.array([max(t[2:]) for t in true])
    print("\n| true longer side (share of the square) | IoU | R@1 true box | R@1 located |")
    print("|---|---:|---:|---:|")
    for part in np.array_split(np.argsort(side), 4):
        print(f"| {side[part].min():.3f}–{side[part].max():.3f} | {ious[part].mean():.2f} | "
              f"{100 * got['true box'][part].mean():.0f} | "
              f"{100 * got['located box'][part].mean():.0f} |")  # fmt: skip
    outside, total = Counter(c for c, m in zip(cats, inside) if not m), Counter(cats)
    print("\nlocated centre outside the true box, by category: "
          + ", ".join(f"{c} {outside[c]}/{n}" for c, n in total.most_common()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
