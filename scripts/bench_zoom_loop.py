"""Why zoom: the same small head learns the product from the item's close-up, not from the scene.

A quick loop on frozen ImageNet EfficientNet-Lite0 maps (minutes, not an hour): ``extract``
computes, for products ``start … start+n`` of a split, the stride-32 map (320 × 7 × 7 at 224
px) of their first scene, of the close-up of the item's true box in it
(:func:`referred.zoom.boxes.close_up_window`) and of their product photo, plus the stride-16
map of the scene (what the locator reads); ``train`` fits one head, category-conditioned
attention pooling of the cells (4 heads, a query per category and one for products, an MLP,
a projection; 0.3M parameters) with the paper's symmetric InfoNCE (batches of 64 in runs of 16
of one category, AdamW lr 1e-3, a cosine schedule), on either the scenes or the close-ups as
queries, and prints validation R@1 / R@10 (the validation products as the gallery) after every
epoch; with ``--located`` it also queries the close-ups of the boxes a small locator, fitted on
the training scenes' stride-16 maps, finds in the validation scenes::

    python scripts/bench_zoom_loop.py extract DATA train 0 5000 OUT/train.npz
    python scripts/bench_zoom_loop.py extract DATA valid 0 500 OUT/valid.npz
    python scripts/bench_zoom_loop.py train scene --train OUT/train.npz --valid OUT/valid.npz
    python scripts/bench_zoom_loop.py train closeup --train OUT/train.npz --valid OUT/valid.npz \\
        --located DATA

docs/benchmarks.md, "Zoom".
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_trunk_levels import category_batches

from referred.categories import LRVSF_CATEGORIES as CATS
from referred.data import open_dataset
from referred.data.boxes import read_item_boxes
from referred.model.config import make_config
from referred.model.efficientnet import load_pretrained_lite0
from referred.preprocess import preprocess as preprocess_images
from referred.zoom.boxes import close_up_window, from_square, to_square
from referred.zoom.head import Locator


def _products(data: Path, split: str, start: int, n: int):
    boxes, _ = read_item_boxes(data)
    found = [
        x
        for x in open_dataset(data).products(split)
        if x.simple and x.complex and (x.complex[0].url, str(x.product_id)) in boxes
    ]
    chosen = found[start : start + n]
    return chosen, [boxes[(x.complex[0].url, str(x.product_id))] for x in chosen]


def _maps(net, images, stride: int) -> np.ndarray:
    pre = make_config("hybrid-lite0", "none").preprocess
    out = []
    for i in range(0, len(images), 4):
        with torch.no_grad():
            x = preprocess_images(images[i : i + 4], pre)
            out.append(net.forward_features(x, stride).half())
    return torch.cat(out).numpy()


def extract(data: Path, split: str, start: int, n: int, out: Path) -> None:
    t0 = time.time()
    products, boxes = _products(data, split, start, n)
    net = load_pretrained_lite0(output_stride=32).eval().folded()
    scenes = [x.complex[0].open() for x in products]
    closeups = [s.crop(close_up_window(b, s.size)) for s, b in zip(scenes, boxes)]
    np.savez(
        out,
        scene=_maps(net, scenes, 32),
        closeup=_maps(net, closeups, 32),
        product=_maps(net, [x.simple[0].open() for x in products], 32),
        scene16=_maps(net, scenes, 16),
        box=np.array([to_square(b, s.size) for b, s in zip(boxes, scenes)], np.float32),
        cat=np.array([CATS.index(x.category) for x in products]),
        ids=np.array([str(x.product_id) for x in products]),
    )
    print(f"{out}: {len(products)} products, {time.time() - t0:.0f} s")


class PoolHead(nn.Module):
    """Attention pooling of 49 cells with a query per category (index 10: products)."""

    def __init__(self, channels: int = 320, dim: int = 256, heads: int = 4, key: int = 64):
        super().__init__()
        self.heads, self.key, self.dim = heads, key, dim
        self.norm = nn.LayerNorm(channels)
        self.v, self.k = nn.Linear(channels, dim), nn.Linear(channels, key * heads)
        self.q = nn.Parameter(torch.randn(len(CATS) + 1, heads, key) * 0.02)
        self.pos = nn.Parameter(torch.zeros(len(CATS) + 1, heads, 49))
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                                 nn.Linear(2 * dim, dim))  # fmt: skip
        self.proj = nn.Linear(dim, dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, maps: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b = maps.shape[0]
        x = self.norm(maps.float().flatten(2).transpose(1, 2))  # (B, 49, C)
        k = self.k(x).view(b, 49, self.heads, self.key)
        a = torch.einsum("bnhk,bhk->bhn", k, self.q[c]) / math.sqrt(self.key) + self.pos[c]
        v = self.v(x).view(b, 49, self.heads, self.dim // self.heads)
        p = torch.einsum("bhn,bnhd->bhd", a.softmax(-1), v).reshape(b, self.dim)
        return F.normalize(self.proj(p + self.mlp(p)), dim=-1)


def _located_closeups(data: Path, valid: dict, train: dict, epochs: int = 5) -> np.ndarray:
    """Stride-32 maps of the close-ups of the boxes a locator (fitted on the training scenes'
    stride-16 maps and true boxes) finds in the validation scenes; prints its mean IoU."""
    torch.manual_seed(0)
    tokens = torch.eye(len(CATS))  # the condition: a one-hot category
    head = Locator(112, len(CATS), 14)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    x, c, y = (torch.from_numpy(train[k]) for k in ("scene16", "cat", "box"))
    steps = epochs * (len(x) // 64)
    for step in range(steps):
        idx = torch.randint(0, len(x), (64,))
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = head.loss(x[idx].float().flatten(2).transpose(1, 2), tokens[c[idx]], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        vx = torch.from_numpy(valid["scene16"]).float().flatten(2).transpose(1, 2)
        _, found = head(vx, tokens[torch.from_numpy(valid["cat"])])
    n = len(found)
    products, _ = _products(data, "valid", 0, n)
    scenes = [p.complex[0].open() for p in products]
    assert [str(p.product_id) for p in products] == list(valid["ids"]), "valid ids differ"
    closeups = [
        s.crop(close_up_window(from_square(f, s.size), s.size))
        for s, f in zip(scenes, found.tolist())
    ]
    net = load_pretrained_lite0(output_stride=32).eval().folded()
    return _maps(net, closeups, 32)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tr, va = dict(np.load(args.train)), dict(np.load(args.valid))
    query = "scene" if args.queries == "scene" else "closeup"
    model = PoolHead()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98))
    t = torch.from_numpy

    def batches():
        return category_batches(tr["cat"], rng)

    def recall(queries: np.ndarray) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            q = model(t(queries), t(va["cat"]))
            g = model(t(va["product"]), torch.full((len(q),), len(CATS)))
        model.train()
        s = q @ g.T
        rank = (s > s.diag()[:, None]).sum(1)
        return float((rank < 1).float().mean()), float((rank < 10).float().mean())

    per_epoch = len(batches())
    total, step, t0 = per_epoch * args.epochs, 0, time.time()
    for epoch in range(args.epochs):
        for b in batches():
            if step < per_epoch:
                lr = 1e-3 * step / per_epoch
            else:
                lr = 5e-4 * (1 + math.cos(math.pi * (step - per_epoch) / (total - per_epoch)))
            for g in opt.param_groups:
                g["lr"] = lr
            q = model(t(tr[query][b]), t(tr["cat"][b]))
            p = model(t(tr["product"][b]), torch.full((len(b),), len(CATS)))
            logits = model.logit_scale.clamp(0, math.log(100)).exp() * q @ p.T
            labels = torch.arange(len(b))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        r1, r10 = recall(va[query])
        print(f"{args.queries} epoch {epoch + 1}: val R@1 {100 * r1:.1f}, R@10 {100 * r10:.1f} "
              f"({(time.time() - t0) / 60:.1f} min)", flush=True)  # fmt: skip
    if args.located:
        r1, r10 = recall(_located_closeups(args.located, va, tr))
        print(f"located close-ups: val R@1 {100 * r1:.1f}, R@10 {100 * r10:.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract")
    ex.add_argument("data", type=Path)
    ex.add_argument("split")
    ex.add_argument("start", type=int)
    ex.add_argument("n", type=int)
    ex.add_argument("out", type=Path)
    tr = sub.add_parser("train")
    tr.add_argument("queries", choices=("scene", "closeup"))
    tr.add_argument("--train", type=Path, required=True)
    tr.add_argument("--valid", type=Path, required=True)
    tr.add_argument("--epochs", type=int, default=8)
    tr.add_argument("--located", type=Path, help="DATA: also query located close-ups")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "extract":
        extract(args.data, args.split, args.start, args.n, args.out)
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
