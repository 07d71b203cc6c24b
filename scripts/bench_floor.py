"""What the score floor marks weak, on a synthetic test split it was not fitted on.

Each test product's first scene is queried under its category (a text model: the category
name, as a chip sends it) against two catalogs made of the split's products:

* **has it**: every product (the exact product is there): how often the true match and the
  top 10 are marked weak, and how often a strong first result is the exact product against a
  weak one;
* **has none of the kind**: only products of *other* categories (the shopper asks for Bags in a
  shop that sells no bags, the issue's "shoes at -0.19"): how many of the top 10 are weak.

The floor is the model's (``score_floor.json``, ``referred train --task floor``) unless
``--floor`` is given.

    python scripts/bench_floor.py MODEL --data DATA [--split test] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_feedback import embed_by_category

from referred.data import open_dataset
from referred.presence.floor import load_floor

TOP = 10


def measure(emb, floor: float) -> dict[str, float]:
    """The shares (fractions) described in the module docstring."""
    q, t, cats = emb.queries, emb.targets, emb.target_categories
    scores = q @ t.T  # (n, n): query i's true match is product i
    n = len(q)
    true = scores[np.arange(n), np.arange(n)]
    top = np.argsort(-scores, axis=1)[:, :TOP]
    top_scores = np.take_along_axis(scores, top, axis=1)
    first_is_true = top[:, 0] == np.arange(n)
    strong_first = top_scores[:, 0] >= floor
    other = scores.copy()
    other[cats[:, None] == cats[None, :]] = -np.inf  # only products of other categories
    other_top = -np.sort(-other, axis=1)[:, :TOP]
    return {
        "queries": n,
        "floor": floor,
        "true_match_weak": float((true < floor).mean()),
        "top10_weak_has_it": float((top_scores < floor).mean()),
        "R@1_when_first_strong": float(first_is_true[strong_first].mean()),
        "R@1_when_first_weak": float(first_is_true[~strong_first].mean())
        if (~strong_first).any()
        else float("nan"),
        "first_weak_has_it": float((~strong_first).mean()),
        "top10_weak_none_of_kind": float((other_top < floor).mean()),
        "first_weak_none_of_kind": float((other_top[:, 0] < floor).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--floor", type=float, help="default: the model's score_floor.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    floor = args.floor if args.floor is not None else load_floor(args.model)
    if floor is None:
        p.error(f"{args.model} has no score_floor.json; fit one or pass --floor")
    emb = embed_by_category(args.model, open_dataset(args.data), args.split, 0, args.threads)
    m = measure(emb, floor)
    print(f"{m['queries']} queries, floor {floor:.4f}")
    for key, value in m.items():
        if key not in ("queries", "floor"):
            print(f"  {key}: {100 * value:.1f}%")
    if args.json:
        args.json.write_text(json.dumps(m, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
