"""Negative texts ("not the black one") on a synthetic test split: how many of the top 10 still
carry the excluded attribute, and whether the wanted product is still found.

Each test product's first scene is queried under its category (a text model: the category
name, as a chip sends it) against the split's products (their titles name the colour family,
e.g. "Brown stripes backpack"). The shopper excludes the colour that the top 10 show most
often among those unlike the wanted product's own (what "not the black one" means when black
ones crowd the results); the search then drops products whose title names it
(``exclude_texts``, :func:`referred.feedback.mentions`), looking further down the ranking.
Prints the share of the top 10 carrying the excluded colour and R@10, before and after.

    python scripts/bench_exclusion.py MODEL --data DATA [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_feedback import embed_by_category

from referred.data import open_dataset
from referred.data.synth.attributes import FAMILIES
from referred.feedback import mentions

TOP = 10


def colour_of(title: str) -> str | None:
    """The colour family a synthetic title names first ("Brown stripes backpack" → brown)."""
    words = title.lower().split()
    return next((w for w in words if w in FAMILIES), None)


def measure(queries: np.ndarray, gallery: np.ndarray, titles: list[str]) -> dict[str, float]:
    """Top-10 share of the excluded colour and R@10, before and after excluding it."""
    colours = [colour_of(t) for t in titles]
    scores = queries @ gallery.T
    before_share, after_share, before_hit, after_hit, asked = [], [], [], [], 0
    for i in range(len(queries)):
        order = np.argsort(-scores[i])
        top = order[:TOP]
        others = Counter(colours[j] for j in top if colours[j] and colours[j] != colours[i])
        if not others:
            continue
        excluded = others.most_common(1)[0][0]
        asked += 1
        kept = [j for j in order if not mentions({"title": titles[j]}, [excluded])][:TOP]
        before_share.append(np.mean([colours[j] == excluded for j in top]))
        after_share.append(np.mean([colours[j] == excluded for j in kept]))
        before_hit.append(i in top)
        after_hit.append(i in kept)
    b, a = float(np.mean(before_share)), float(np.mean(after_share))
    return {
        "queries": asked,
        "share_before": b,
        "share_after": a,
        "share_drop": (b - a) / b if b else 0.0,
        "R@10_before": float(np.mean(before_hit)),
        "R@10_after": float(np.mean(after_hit)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    dataset = open_dataset(args.data)
    ids = [x.product_id for x in dataset.products(args.split)]
    emb = embed_by_category(args.model, dataset, args.split, 0, args.threads)
    if sum(emb.skipped.values()) or len(ids) != len(emb.targets):
        raise SystemExit(f"products skipped while embedding ({dict(emb.skipped)}): ids misalign")
    meta = pq.read_table(args.data / "products_simple_metadata.parquet").to_pydict()
    title_of = {str(pid): text for pid, text in zip(meta["PRODUCT_ID"], meta["TEXT"])}
    titles = [title_of[i] for i in ids]
    m = measure(emb.queries, emb.targets, titles)
    print(f"{m['queries']} queries, gallery {len(emb.targets)} products of the {args.split} split")
    print("| | share of top 10 with the excluded colour | R@10 |\n|---|---:|---:|")
    print(f"| plain search | {100 * m['share_before']:.1f}% | {100 * m['R@10_before']:.1f} |")
    print(f"| excluding it | {100 * m['share_after']:.1f}% | {100 * m['R@10_after']:.1f} |")
    print(f"drop of the share: {100 * m['share_drop']:.1f}%")
    if args.json:
        args.json.write_text(json.dumps(m, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
