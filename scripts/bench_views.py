"""Test-time views of a referred query: does a second look at the scene find the product more
often?

Each test product's first scene is queried under its category (a text model: the category
name, as a chip sends it) against the split's products, as the scene alone (``plain``), its
mirror image, and a **zoom**: the square around the peak of the model's own attention for that
category (half the scene's side), conditioned the same; then the normalised sums of plain and
each other view. Prints R@1 and R@10 per view (the exact product among the split's).

    python scripts/bench_views.py MODEL --data DATA [--limit 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

import referred
from referred.data import open_dataset
from referred.index import create_index
from referred.query import NONE
from referred.search import Searcher


def zoom_box(grid: np.ndarray, width: int, height: int, frac: float = 0.5) -> tuple[int, ...]:
    """The box of side ``frac`` of the padded square around the attention grid's peak, in the
    scene's pixels (the grid covers the scene padded to a square, centred)."""
    g = grid.shape[0]
    iy, ix = np.unravel_index(int(np.argmax(grid)), grid.shape)
    side = max(width, height)
    cx = (ix + 0.5) / g * side - (side - width) / 2
    cy = (iy + 0.5) / g * side - (side - height) / 2
    half = frac * side / 2
    box = (max(0, cx - half), max(0, cy - half), min(width, cx + half), min(height, cy + half))
    return tuple(round(float(b)) for b in box)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = referred.load_model(args.model)
    searcher = Searcher(model, create_index("flat", model.config.output_dim))
    enc = searcher.encoder
    products = [
        q for q in open_dataset(args.data).products(args.split)
        if q.category and q.simple and q.complex
    ][: args.limit]  # fmt: skip
    gallery = np.concatenate([
        enc.encode([q.simple[0].open() for q in products[i : i + 16]],
                   [NONE] * len(products[i : i + 16])).numpy()
        for i in range(0, len(products), 16)
    ])  # fmt: skip
    views: dict[str, list[np.ndarray]] = {
        k: [] for k in ("plain", "mirror", "zoom", "plain + mirror", "plain + zoom")
    }
    for q in products:
        scene = q.complex[0].open().convert("RGB")
        cond = enc.parse(category=q.category)
        plain, mirror = enc.encode([scene, ImageOps.mirror(scene)], [cond, cond]).numpy()
        grid = searcher.attention(scene, category=q.category)
        zoom = enc.encode([scene.crop(zoom_box(grid, *scene.size))], [cond]).numpy()[0]
        for name, v in (("plain", plain), ("mirror", mirror), ("zoom", zoom),
                        ("plain + mirror", unit(plain + mirror)),
                        ("plain + zoom", unit(plain + zoom))):  # fmt: skip
            views[name].append(v)
    print(f"{len(products)} queries against the {args.split} split's {len(products)} products")
    print("| view | R@1 | R@10 |\n|---|---:|---:|")
    for name, vs in views.items():
        scores = np.stack(vs) @ gallery.T
        own = scores[np.arange(len(vs)), np.arange(len(vs))]
        ranks = (scores > own[:, None]).sum(axis=1)
        print(f"| {name} | {100 * (ranks < 1).mean():.1f} | {100 * (ranks < 10).mean():.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
