"""What the first result gets right: the category, variant, colour and pattern of the product.

Each test product's first scene is queried with its category (a text model gets the category
name, as a chip sends it) through the one query path, against the split's product photos
(+0). Printed per attribute set: the share of queries whose first result shares it with the
wanted product, the share of products whose nearest other product (by the model's product
vectors) shares it, and the R@1 a model would reach that knew those attributes exactly and
picked at random among the products sharing them (how far the attributes alone identify a
product in this gallery). docs/benchmarks.md, "Which trunk level"::

    python scripts/top1_attributes.py MODEL --data DATA [--limit 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

import referred
from referred.data import open_dataset
from referred.query import QueryEncoder

ATTRIBUTE_SETS = (
    ("CATEGORY",),
    ("CATEGORY", "VARIANT"),
    ("CATEGORY", "VARIANT", "COLOUR_NAME"),
    ("CATEGORY", "VARIANT", "COLOUR_NAME", "PATTERN"),
    ("COLOUR_NAME",),
    ("PATTERN",),
)


def agreement(attrs: np.ndarray, picked: np.ndarray) -> float:
    """Share of rows i whose attributes equal those of row ``picked[i]`` (all columns)."""
    return float((attrs[picked] == attrs).all(axis=1).mean())


def oracle_r1(attrs: np.ndarray) -> float:
    """Expected R@1 of picking at random among the products that share one's attributes."""
    keys = ["\x1f".join(map(str, row)) for row in attrs]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return float((1.0 / counts[inverse]).mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    encoder = QueryEncoder(referred.load_model(args.model))
    products = [x for x in open_dataset(args.data).products(args.split) if x.simple and x.complex]
    products = products[: args.limit]
    q = encoder.encode([x.complex[0].open() for x in products], [x.category for x in products])
    t = encoder.encode([x.simple[0].open() for x in products]).numpy()
    first = (q.numpy() @ t.T).argmax(1)
    between = t @ t.T
    np.fill_diagonal(between, -np.inf)
    nearest = between.argmax(1)
    table = pq.read_table(args.data / "synth_products.parquet").to_pandas()
    table = table.set_index(table["PRODUCT_ID"].astype(str))
    meta = table.loc[[str(x.product_id) for x in products]]
    print(f"{args.model} on {len(products)} {args.split} products of {args.data} (+0)")
    print(f"R@1 {100 * float((first == np.arange(len(first))).mean()):.1f}")
    print(
        "| attributes | first result shares them | nearest product shares them | R@1 knowing them |"
    )
    print("|---|---:|---:|---:|")
    for keys in ATTRIBUTE_SETS:
        attrs = meta[list(keys)].to_numpy()
        print(
            f"| {' + '.join(k.lower() for k in keys)} | {100 * agreement(attrs, first):.1f} "
            f"| {100 * agreement(attrs, nearest):.1f} | {100 * oracle_r1(attrs):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
