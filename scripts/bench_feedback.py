"""One round of relevance feedback on a test split: R@1 before and after.

Each test product's first scene is queried under its category (a text model: the category
name, as a chip sends it) against the split's products + ``--distractors``. The shopper then
marks one of the 12 results shown: the product itself when it is there, else the shown product
nearest to it (by the model's product vectors: the one that looks most like it), and the query
is refined by :func:`referred.feedback.refine` (what ``positive_ids`` does on a search).
Variant ``+ not these``: the shown results ranked above the marked one are also marked bad.

    python scripts/bench_feedback.py RUN/best --data DATA [--distractors 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import referred
from referred.data import open_dataset
from referred.feedback import refine
from referred.model.trunk_memo import TrunkMemo
from referred.train.validate import embed_split

SHOWN = 12


def ranks_of(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of gallery row i for query i."""
    scores = queries @ gallery.T
    own = scores[np.arange(len(queries)), np.arange(len(queries))]
    return (scores > own[:, None]).sum(axis=1)


def one_round(queries: np.ndarray, gallery: np.ndarray, with_negatives: bool) -> np.ndarray:
    """Each query refined by one mark among its top ``SHOWN`` (see the module docstring)."""
    out = np.empty_like(queries)
    scores = queries @ gallery.T
    for i, q in enumerate(queries):
        shown = np.argsort(-scores[i])[:SHOWN]
        # the product itself when shown, else the shown one nearest to it
        mark = i if i in shown else int(shown[np.argmax(gallery[shown] @ gallery[i])])
        above = shown[: int(np.where(shown == mark)[0][0])] if with_negatives else shown[:0]
        out[i] = refine(q, gallery[[mark]], gallery[above] if len(above) else None)
    return out


def embed_by_category(model_path: Path, dataset, split: str, distractors: int, threads: int):
    """Load the model (a hybrid with its trunk memoised) and embed ``split``: each product's
    first scene under its category name (as a chip sends it), products and ``distractors``."""
    torch.set_num_threads(threads)
    model = referred.load_model(model_path)
    if model.trunk is not None:
        model.trunk_memo = TrunkMemo(4_000_000_000)
    return embed_split(model, dataset, split, max_distractors=distractors, texts="category")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--distractors", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    emb = embed_by_category(
        args.model, open_dataset(args.data), args.split, args.distractors, args.threads
    )
    gallery = np.concatenate([emb.targets, emb.distractors])
    rows = {}
    for name, queries in (
        ("before feedback", emb.queries),
        ("one mark among the 12 shown", one_round(emb.queries, gallery, False)),
        ("one mark + the ones above it as not these", one_round(emb.queries, gallery, True)),
    ):
        r = ranks_of(queries, gallery)
        rows[name] = {f"R@{k}": float((r < k).mean()) for k in (1, 10, SHOWN)}
    print(
        f"{len(emb.queries)} queries, gallery {len(gallery)} ({len(emb.distractors)} distractors)"
    )
    print("| | R@1 | R@10 | R@12 |\n|---|---:|---:|---:|")
    for name, m in rows.items():
        print(f"| {name} | {100 * m['R@1']:.1f} | {100 * m['R@10']:.1f} | {100 * m['R@12']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
