"""The locator's head and loss compared on the same cached scene features.

Fitting a locator (``referred train --task locator``) spends most of its time on the frozen
trunk's maps of the scenes; comparing heads does not need them again. ``features`` computes
them once for a model and dataset (each distinct scene once, as the fit does: the pairs of
each split, their category indices, their true boxes as fractions of the padded square, and
the model's condition tokens); ``fit`` trains one head on them with the fit's own loop
(:func:`referred.zoom.fit.train_head`: AdamW, cosine, batches of 64, the best validation IoU
kept) and prints validation IoU after each epoch, then the test pairs' IoU, share over 0.5 and
share whose predicted centre falls in the true box, by category::

    python scripts/bench_locator.py features RUN/best /tmp/s10/d20 /tmp/loc.pt --pairs 20000
    python scripts/bench_locator.py fit /tmp/loc.pt --no-film --overlap 0   # before FiLM + GIoU
    python scripts/bench_locator.py fit /tmp/loc.pt                         # both (the default)

docs/benchmarks.md, "The locator's overlap loss".
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import referred
from referred.data import open_dataset
from referred.data.boxes import read_item_boxes
from referred.presence.fit import condition_tokens
from referred.query import QueryEncoder
from referred.zoom.fit import _encode, _predict, box_ious, box_pairs, train_head
from referred.zoom.head import Locator

SPLITS = ("train", "valid", "test")


def features(args: argparse.Namespace) -> None:
    model = referred.load_model(args.model).eval()
    encoder = QueryEncoder(model)
    names = list(encoder.category_choices)
    boxes, _ = read_item_boxes(args.data)
    dataset = open_dataset(args.data)
    cache = {"names": names, "tokens": condition_tokens(model, encoder, names)}
    for split, limit in zip(SPLITS, (args.pairs, 500, 500)):
        pairs = box_pairs(dataset, split, boxes, limit)
        print(f"{split}: {len(pairs)} pairs", flush=True)
        cache[split] = _encode(model, encoder, pairs, names, print, args.scene_size)
    torch.save(cache, args.out)


def centre_inside(pred: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    """Whether each predicted ``(cx, cy, w, h)`` box's centre lies in the true box."""
    return (((pred[:, :2] - true[:, :2]).abs() <= true[:, 2:] / 2).all(1)).numpy()


def fit(args: argparse.Namespace) -> None:
    cache = torch.load(args.cache)
    tokens, names = cache["tokens"], cache["names"]
    train = tuple(t[: args.pairs] for t in cache["train"])
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = train[0]
    grid = math.isqrt(x.shape[1])
    head = Locator(x.shape[-1], tokens.shape[-1], grid, args.hidden, film=args.film)
    t0 = time.perf_counter()
    train_head(
        head,
        train,
        cache["valid"],
        tokens,
        epochs=args.epochs,
        lr=args.lr,
        batch=64,
        rng=rng,
        overlap=args.overlap,
    )
    print(f"trained in {time.perf_counter() - t0:.0f} s (the best validation epoch kept)")
    xs, cs, ys = cache["test"]
    pred = _predict(head, xs, tokens[cs])
    iou, inside = box_ious(pred, ys), centre_inside(pred, ys)
    print("| category | pairs | IoU | IoU > 0.5 | centre inside |\n|---|---:|---:|---:|---:|")
    for k, name in [*enumerate(names), (None, "all")]:
        m = np.ones(len(iou), bool) if k is None else (cs == k).numpy()
        if m.any():
            row = f"{iou[m].mean():.3f} | {(iou[m] > 0.5).mean():.1%} | {inside[m].mean():.1%}"
            print(f"| {name} | {m.sum()} | {row} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", required=True)
    f = verbs.add_parser("features", help="cache the scenes' features of a model and dataset")
    f.add_argument("model", type=Path)
    f.add_argument("data", type=Path)
    f.add_argument("out", type=Path)
    f.add_argument("--pairs", type=int, default=20000, help="training pairs")
    f.add_argument("--scene-size", type=int, default=224)
    t = verbs.add_parser("fit", help="train one head on cached features")
    t.add_argument("cache", type=Path)
    t.add_argument("--pairs", type=int, default=None, help="the first N cached training pairs")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--hidden", type=int, default=128)
    t.add_argument("--overlap", type=float, default=2.0, help="weight of 1 - generalised IoU")
    t.add_argument("--no-film", dest="film", action="store_false", help="condition added only")
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    (features if args.verb == "features" else fit)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
