#!/usr/bin/env python
"""Near-duplicate cleaning: precision/recall on planted duplicates, and cost at scale.

``planted``: products of a synthetic dataset (``referred data synth``; its train split, whose
products are many) and distractors (its valid split), plus planted copies of ``--planted``
products (:mod:`referred.data.dedup.plant`: re-encoded, resized, cropped, colour-jittered, in
turn), half added as distractors (the paper's product-distractor case), half as products.
The hard negatives are the catalog's products that share a caption with another (same
colour family and noun, different product). Every image is embedded unconditioned with
``--model``; each dedup setting is then scored on pairs (a found pair is right when it is a
planted (original, copy) pair) and on the cleaned list (copies dropped, originals and
unique items kept).

``scale``: ``--n`` uniform random 64-bit hashes with 1,000 planted copies at 1-``radius``
flipped bits, then ``--n`` clustered unit vectors (``scripts/bench_index.py``'s generator,
``--dim``) with 1,000 planted copies at cosine ~0.97-0.99: time, peak memory (RSS) and
recall of the planted pairs. One thread.

    python scripts/bench_dedup.py planted --data /tmp/dd_synth --products 800
    python scripts/bench_dedup.py scale --part hashes --n 2000000
    python scripts/bench_dedup.py scale --part vectors --n 2000000 --dim 512
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from referred.data.dedup import (  # noqa: E402
    DedupConfig,
    HammingStats,
    Items,
    VectorStats,
    embedding_pairs,
    find_duplicates,
    hamming_pairs,
    hash_items,
)
from referred.data.dedup.plant import EDITS, plant  # noqa: E402

SETTINGS = {
    "phash<=4": DedupConfig(methods=("phash",), max_hamming=4),
    "phash<=6": DedupConfig(methods=("phash",), max_hamming=6),
    "phash<=8": DedupConfig(methods=("phash",), max_hamming=8),
    "emb>=0.90": DedupConfig(methods=("embedding",), min_cosine=0.90),
    "emb>=0.95": DedupConfig(methods=("embedding",), min_cosine=0.95),
    "emb>=0.98": DedupConfig(methods=("embedding",), min_cosine=0.98),
    "phash<=6 or emb>=0.95": DedupConfig(methods=("phash", "embedding"), min_cosine=0.95),
    **{
        f"phash<={h} and emb>={c:.2f}": DedupConfig(
            methods=("phash", "embedding"), max_hamming=h, min_cosine=c, combine="all"
        )
        for h, c in ((6, 0.95), (8, 0.95), (10, 0.90), (10, 0.95), (12, 0.95))
    },
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def planted_catalog(args: argparse.Namespace):
    """(items [(id, role, bytes)], truth {(orig, copy)}, edit per copy, caption per id)."""
    from referred.data import open_dataset

    ds = open_dataset(args.data)
    products = list(itertools.islice(ds.products("train"), args.products))
    distractors = list(itertools.islice(ds.distractors("valid"), args.products))
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(products), args.planted, replace=False)
    items = [(p.product_id, 0, p.simple[0].read_bytes()) for p in products]
    items += [(f"d{d.distractor_id}", 1, d.image.read_bytes()) for d in distractors]
    caption = {p.product_id: p.captions[0] for p in products}
    truth, edit_of = {}, {}
    edits = list(EDITS)
    for n, k in enumerate(chosen):
        p, edit = products[k], edits[n % len(edits)]
        copy_id = f"copy-{p.product_id}-{edit}"
        role = 1 if n % 2 == 0 else 0  # half as distractors, half as products
        items.append((copy_id, role, plant(p.simple[0].open(), edit, args.seed + n)))
        truth[p.product_id] = copy_id
        edit_of[copy_id] = edit
    return items, truth, edit_of, caption


def run_planted(args: argparse.Namespace) -> None:
    import torch

    from referred.catalog.cache import read_embeddings
    from referred.embed import embed_items
    from referred.model import load_model

    torch.set_num_threads(1)
    items, truth, edit_of, caption = planted_catalog(args)
    n_prod = sum(1 for _, r, _ in items if r == 0)
    print(f"catalog: {n_prod} products, {len(items) - n_prod} distractors, {len(truth)} planted")
    t0 = time.perf_counter()
    ids, roles, hashes = hash_items(items)
    print(f"hashed {len(ids)} images in {time.perf_counter() - t0:.1f} s")
    emb = Path(args.work) / "embeddings.parquet"
    t0 = time.perf_counter()
    embed_items(load_model(args.model), [(i, b) for i, _, b in items], emb, progress=False)
    print(f"embedded in {time.perf_counter() - t0:.1f} s ({args.model})")
    e_ids, vectors = read_embeddings(emb)
    row = {i: k for k, i in enumerate(e_ids)}
    vec = vectors[[row[i] for i in ids]]
    base = Items(ids, roles, hashes, np.ones(len(ids), bool), vec, np.ones(len(ids), bool))
    pairs_true = {frozenset((o, c)) for o, c in truth.items()}
    by_caption = defaultdict(list)
    for pid, cap in caption.items():
        by_caption[cap].append(pid)
    hard = {frozenset(p) for g in by_caption.values() for p in itertools.combinations(g, 2)}
    print(f"hard negatives: {len(hard)} same-caption product pairs")
    header = (
        f"{'setting':<26}{'pairs':>7}{'prec':>7}{'recall':>8}"
        + "".join(f"{e:>9}" for e in EDITS)
        + f"{'hardneg':>9}{'dropped':>9}{'drop-prec':>10}"
    )
    print(header)
    for name, cfg in SETTINGS.items():
        r = find_duplicates(base, cfg)
        found = {frozenset((ids[a], ids[b])) for a, b in zip(r.i, r.j)}
        hit = found & pairs_true
        per_edit = defaultdict(lambda: [0, 0])
        for o, c in truth.items():
            per_edit[edit_of[c]][1] += 1
            per_edit[edit_of[c]][0] += frozenset((o, c)) in found
        dropped = [ids[k] for k in np.flatnonzero(~r.kept)]
        good_drop = sum(1 for d in dropped if d in edit_of or truth.get(d) is not None)
        print(
            f"{name:<26}{len(found):>7}{len(hit) / max(1, len(found)):>7.3f}"
            f"{len(hit) / len(pairs_true):>8.3f}"
            + "".join(f"{per_edit[e][0] / max(1, per_edit[e][1]):>9.3f}" for e in EDITS)
            + f"{len(found & hard):>9}{len(dropped):>9}{good_drop / max(1, len(dropped)):>10.3f}"
        )


def run_scale(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    n, planted = args.n, 1000
    src = rng.choice(n // 2, planted, replace=False)
    dst = n // 2 + rng.choice(n // 2, planted, replace=False)
    if args.part == "hashes":
        h = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
        for k in range(planted):
            bits = rng.choice(64, rng.integers(1, args.radius + 1), replace=False)
            h[dst[k]] = h[src[k]] ^ np.uint64(sum(1 << int(b) for b in bits))
        st, t0 = HammingStats(), time.perf_counter()
        i, j, _ = hamming_pairs(h, args.radius, stats=st)
        secs, stats = time.perf_counter() - t0, st
    else:
        from bench_index import clustered_vectors

        centres = rng.standard_normal((args.clusters, 64), dtype=np.float32)
        proj = rng.standard_normal((64, args.dim), dtype=np.float32) / math.sqrt(64)
        x = clustered_vectors(n, args.dim, rng, centres, proj)
        noise = rng.standard_normal((planted, args.dim), dtype=np.float32)
        y = x[src] + rng.uniform(0.1, 0.25, (planted, 1)).astype(np.float32) * noise / math.sqrt(
            args.dim
        )
        x[dst] = y / np.linalg.norm(y, axis=1, keepdims=True)
        cos = np.einsum("nd,nd->n", x[src], x[dst])
        print(f"planted cosines: min {cos.min():.3f}, median {np.median(cos):.3f}")
        st, t0 = VectorStats(), time.perf_counter()
        i, j, _ = embedding_pairs(x, args.min_cosine, nprobe=args.nprobe, stats=st)
        secs, stats = time.perf_counter() - t0, st
    found = set(zip(i.tolist(), j.tolist()))
    truth = set(zip(np.minimum(src, dst).tolist(), np.maximum(src, dst).tolist()))
    print(
        f"{args.part}: n={n:,} in {secs:.1f} s, peak RSS {peak_mib():,.0f} MiB; "
        f"planted recall {len(found & truth) / planted:.3f}, pairs {len(found):,}; {stats}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("planted")
    a.add_argument("--data", required=True, help="a referred data synth folder")
    a.add_argument("--products", type=int, default=800)
    a.add_argument("--planted", type=int, default=200)
    a.add_argument("--model", default="src/referred/assets/demo-model")
    a.add_argument("--work", default="/tmp/bench_dedup")
    a.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("scale")
    b.add_argument("--part", choices=("hashes", "vectors"), required=True)
    b.add_argument("--n", type=int, default=2_000_000)
    b.add_argument("--radius", type=int, default=6)
    b.add_argument("--dim", type=int, default=512)
    b.add_argument("--clusters", type=int, default=1000)
    b.add_argument("--min-cosine", type=float, default=0.95)
    b.add_argument("--nprobe", type=int, default=4)
    b.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run_planted(args) if args.what == "planted" else run_scale(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
