"""How much of the attention overlay lands on the asked item: mass inside its box, per pair.

For test scenes of a synthetic dataset (``synth_outfits.parquet`` holds each worn item's box),
each worn item is asked by its category (a text model: the name, as a chip sends it) and the
attention map the page draws (:meth:`referred.Searcher.attention`, the class token's last-block
attention over the (padded, square) scene, 14×14 for hybrid-lite0; for a zooming model where
its locator found the item, 56×56) is compared with the
item's box: the share of the mass inside the box, each map cell counted by the fraction of its
area the box covers. Prints the median share, the share of pairs with ≥ 50% inside, and the
same for a uniform map (what the box's area alone gives)::

    python scripts/attention_in_box.py MODEL --data DATA [--scenes 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

import referred
from referred.data import open_dataset
from referred.data.synth import OUTFITS_FILE
from referred.model.trunk_memo import TrunkMemo
from referred.query import QueryEncoder
from referred.zoom.boxes import cell_coverage, mass_in_box


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--scenes", type=int, default=100)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = referred.load_model(args.model).eval()
    if model.trunk is not None:
        model.trunk_memo = TrunkMemo(1_000_000_000, "lru")
    encoder = QueryEncoder(model)
    dataset = open_dataset(args.data)
    records = {c.url: c for x in dataset.products(args.split) for c in x.complex}
    t = pq.read_table(args.data / OUTFITS_FILE).to_pydict()
    shares, uniform, scenes = [], [], 0
    for url, kind, cats, boxes, w, h in zip(
        t["URL"], t["TYPE"], t["CATEGORIES"], t["BOXES"], t["WIDTH"], t["HEIGHT"]
    ):
        if kind != "COMPLEX" or url not in records:
            continue
        pixels = encoder.pixels([records[url].open()])
        for cat, box in zip(cats, boxes):
            amap = encoder.attention_map(pixels, [encoder.parse(category=cat)])[0].numpy()
            shares.append(mass_in_box(amap, box, (w, h)))
            cover = cell_coverage(box, (w, h), amap.shape[0])
            uniform.append(float(cover.sum() / cover.size))
        scenes += 1
        if scenes == args.scenes:
            break
    s, u = np.asarray(shares), np.asarray(uniform)
    out = {
        "pairs": len(s),
        "median_share_in_box": float(np.median(s)),
        "pairs_with_half_in_box": float((s >= 0.5).mean()),
        "uniform_median_share": float(np.median(u)),
        "uniform_pairs_with_half": float((u >= 0.5).mean()),
        "grid": int(amap.shape[0]),
    }
    print(
        f"{out['pairs']} (scene, item) pairs, {out['grid']}x{out['grid']} maps: median share of "
        f"the attention inside the item's box {100 * out['median_share_in_box']:.1f}% "
        f"(uniform map: {100 * out['uniform_median_share']:.1f}%); pairs with >= 50% inside "
        f"{100 * out['pairs_with_half_in_box']:.1f}% (uniform: "
        f"{100 * out['uniform_pairs_with_half']:.1f}%)"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
