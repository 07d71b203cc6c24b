"""Does "this, but in <colour>" bring that colour back on the demo catalog?

For every catalog product of the Combiner's categories (dresses, tops, outerwear) whose title
names one colour family, and for each other colour asked of it, the share of the top 10 whose
title names the asked colour: with ``Searcher.search(like=id, modify="in <colour>")``, and
with ``like=id`` alone (the same product's neighbours, unmodified). Titles are the catalog's
captions ("a red gown", "a dress in navy"), so only results whose title names some colour
count. The demo's own catalog (built as ``referred demo`` builds it, in a temporary folder)::

    python scripts/cir_demo_check.py [--colours red,blue,black] [--k 10]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CATEGORIES = ("Whole Body", "Upper Body", "Outwear")


def colours_in(title: str, names: list[str]) -> set[str]:
    return {c for c in names if re.search(rf"\b{c}\b", title.lower())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--colours", default="red,blue,black,white,green,pink")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from referred.data.synth.attributes import FAMILIES
    from referred.demo import (
        DEMO_MODEL_DIR,
        embed_catalog,
        ensure_demo_data,
        export_catalog,
        shipped_vectors,
    )
    from referred.index import create_index
    from referred.model import load_model
    from referred.search import Searcher

    families = list(FAMILIES)
    asked = [c.strip() for c in args.colours.split(",")]
    model = load_model(DEMO_MODEL_DIR)
    with tempfile.TemporaryDirectory(prefix="referred-cir-check-") as tmp:
        catalog = export_catalog(ensure_demo_data(Path(tmp) / "data"), Path(tmp) / "catalog")
        vectors = shipped_vectors(model, catalog)  # the demo's own, when they fit
        if vectors is None:
            vectors = embed_catalog(model, catalog)
        index = create_index("flat", model.config.output_dim)
        index.add([r[0] for r in catalog.records], vectors, [r[2] for r in catalog.records])
        searcher = Searcher(model, index)
        shares: dict[str, list[float]] = {"modify": [], "like alone": []}
        for pid, _, meta in catalog.records:
            own = colours_in(meta["title"], families)
            if meta["category"] not in CATEGORIES or len(own) != 1:
                continue
            for colour in (c for c in asked if c not in own):
                for name, kwargs in (("modify", {"modify": f"in {colour}"}), ("like alone", {})):
                    hits = searcher.search(None, like=pid, k=args.k, **kwargs)
                    named = [colours_in(h.metadata["title"], families) for h in hits]
                    named = [n for n in named if n]
                    if named:
                        shares[name].append(np.mean([colour in n for n in named]))
    print(f"{len(shares['modify'])} (product, colour) queries on the demo catalog, top {args.k}:")
    for name, values in shares.items():
        print(
            f"  {name}: {100 * np.mean(values):.1f}% of results naming a colour name the asked one"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
