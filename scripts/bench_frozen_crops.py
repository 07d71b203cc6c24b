"""Frozen ImageNet features, no training: a perfect crop of the item against its product photo.

For each test product, its first scene is cropped to the item's box (``synth_outfits.parquet``
records it) and matched against the split's product photos by the cosine of pooled
EfficientNet-Lite0 features (ImageNet weights, frozen) at stride 16 (the map hybrid-lite0 took
its tokens from) and stride 32 (the trunk's last block), averaged or GeM-pooled (p = 3). How
much of "which product is this" the frozen trunk already carries at each depth, with the
localisation solved: docs/benchmarks.md, "Which trunk level"::

    python scripts/bench_frozen_crops.py --data DATA [--limit 500]

``--window closeup`` crops the close-up a zooming model embeds (the square around the box,
:func:`referred.zoom.boxes.close_up_window`) instead of the box itself, and ``--sizes 224,128``
measures each at several input resolutions (query and product photo both resized to it): how
much of the identity survives a cheaper trunk pass.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_regions import recall
from recall_by_item_size import item_boxes

from referred.data import open_dataset
from referred.model.config import make_config
from referred.model.efficientnet import load_pretrained_lite0
from referred.preprocess import preprocess as preprocess_images
from referred.region import crop
from referred.zoom.boxes import close_up_window


def pooled_features(net, images, preprocess) -> dict[str, torch.Tensor]:
    """name → (N, C) L2-normalised features of ``images`` at strides 16 and 32."""
    out: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(images), 8):
        x = preprocess_images(images[i : i + 8], preprocess)
        with torch.no_grad():
            levels = {16: net.forward_features(x, 16), 32: net.forward_features(x, 32)}
        for stride, f in levels.items():
            out.setdefault(f"stride {stride}, mean", []).append(f.mean((2, 3)))
            gem = f.clamp_min(1e-6).pow(3).mean((2, 3)).pow(1 / 3)
            out.setdefault(f"stride {stride}, GeM", []).append(gem)
    return {k: F.normalize(torch.cat(v), dim=1) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--window", choices=("box", "closeup"), default="box")
    p.add_argument("--sizes", default="224", help="input resolutions, comma-separated")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    boxes = item_boxes(args.data)
    products = [
        x
        for x in open_dataset(args.data).products(args.split)
        if x.simple and x.complex and (x.complex[0].url, x.product_id) in boxes
    ][: args.limit]
    net = load_pretrained_lite0(output_stride=32).eval()
    crops = [_query(x, boxes[(x.complex[0].url, x.product_id)], args.window) for x in products]
    photos = [x.simple[0].open() for x in products]
    print(f"{len(products)} {args.split} products of {args.data}: {args.window} vs product photo")
    print("| input px | frozen features | R@1 | R@10 |\n|---:|---|---:|---:|")
    for size in (int(v) for v in args.sizes.split(",")):
        preprocess = replace(make_config("hybrid-lite0", "none").preprocess, size=size)
        queries = pooled_features(net, crops, preprocess)
        targets = pooled_features(net, photos, preprocess)
        for name in queries:
            r = recall(queries[name].numpy(), targets[name].numpy())
            print(f"| {size} | {name} | {100 * r['R@1']:.1f} | {100 * r['R@10']:.1f} |")
    return 0


def _query(product, box, window: str):
    """The query image: the item's box, or the close-up window around it."""
    scene = product.complex[0].open()
    if window == "box":
        return crop(scene, box)
    return scene.crop(close_up_window(box, scene.size))


if __name__ == "__main__":
    sys.exit(main())
