"""Frozen ImageNet features, no training: a perfect crop of the item against its product photo.

For each test product, its first scene is cropped to the item's box (``synth_outfits.parquet``
records it) and matched against the split's product photos by the cosine of pooled
EfficientNet-Lite0 features (ImageNet weights, frozen) at stride 16 (the map hybrid-lite0 took
its tokens from) and stride 32 (the trunk's last block), averaged or GeM-pooled (p = 3). How
much of "which product is this" the frozen trunk already carries at each depth, with the
localisation solved: docs/benchmarks.md, "Which trunk level"::

    python scripts/bench_frozen_crops.py --data DATA [--limit 500]
"""

from __future__ import annotations

import argparse
import sys
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
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    boxes = item_boxes(args.data)
    products = [
        x
        for x in open_dataset(args.data).products(args.split)
        if x.simple and x.complex and (x.complex[0].url, x.product_id) in boxes
    ][: args.limit]
    preprocess = make_config("hybrid-lite0", "none").preprocess
    net = load_pretrained_lite0(output_stride=32).eval()
    crops = [crop(x.complex[0].open(), boxes[(x.complex[0].url, x.product_id)]) for x in products]
    queries = pooled_features(net, crops, preprocess)
    targets = pooled_features(net, [x.simple[0].open() for x in products], preprocess)
    print(f"{len(products)} {args.split} products of {args.data}; true-box crop vs product photo")
    print("| frozen features | R@1 | R@10 |\n|---|---:|---:|")
    for name in queries:
        r = recall(queries[name].numpy(), targets[name].numpy())
        print(f"| {name} | {100 * r['R@1']:.1f} | {100 * r['R@10']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
