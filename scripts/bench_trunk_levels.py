"""Which trunk features should hybrid-lite0's tokens take? A quick loop on precomputed maps.

The frozen trunk is a fixed function, so each image's maps are computed once (``extract``) and
hybrid-lite0's transformer is trained on them alone (``train``): minutes per arm instead of an
hour, the same model code (``CondViT.conv1`` … ``proj``), the paper's symmetric InfoNCE, batches
of 64 in runs of 16 of one category, AdamW (lr 5e-4, weight decay 0.1 on matrices), one epoch
of warm-up then a cosine to 0. Each product is one pair: its first scene conditioned on its
category, its first product photo unconditioned. Validation R@1/R@10 at +0 after every epoch.

Arms (docs/benchmarks.md, "Which trunk level"):

* ``s16``: the stride-16 map, 2 × 2 cells a token (hybrid-lite0 as it was);
* ``colour``: the same plus each token's pixels averaged in 4 × 4 sub-cells (a colour branch);
* ``s32``: the stride-32 map, one cell a token;
* ``pyramid``: ``s16`` plus the token's stride-32 features (what hybrid-lite0-pyramid does)::

    python scripts/bench_trunk_levels.py extract DATA train 0 2500 OUT/tr0.npz [--stride 32]
    python scripts/bench_trunk_levels.py train pyramid --epochs 6 --out OUT/pyramid.json \\
        --train OUT/tr0.npz,OUT/tr1.npz --valid OUT/va.npz \\
        --deep OUT/t32a.npz,OUT/t32b.npz --deep-valid OUT/va32.npz
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from referred.categories import LRVSF_CATEGORIES as CATS
from referred.data import open_dataset
from referred.model.config import make_config
from referred.model.factory import create_model

ARMS = ("s16", "colour", "s32", "pyramid")


def extract(data: Path, split: str, start: int, n: int, out: Path, stride: int) -> None:
    """Trunk maps (float16) and 8 × 8-pooled pixels of products ``start … start+n`` of ``split``:
    ``sm``/``sp`` for their first scene, ``pm``/``pp`` for their first product photo."""
    products = [x for x in open_dataset(data).products(split) if x.simple and x.complex]
    products = products[start : start + n]
    cfg = make_config("hybrid-lite0", "category", CATS)
    if stride == 32:
        cfg = replace(cfg, trunk_stride=32, trunk_patch=1)
    model = create_model(cfg, pretrained_trunk=True)

    def run(images):
        maps, pix = [], []
        for i in range(0, len(images), 16):
            x = model.preprocess(images[i : i + 16])
            with torch.no_grad():
                maps.append(model.patch_maps(x).half())
                pix.append(F.avg_pool2d(x, 8).half())
        return torch.cat(maps).numpy(), torch.cat(pix).numpy()

    t0 = time.time()
    sm, sp = run([x.complex[0].open() for x in products])
    pm, pp = run([x.simple[0].open() for x in products])
    cats = np.array([CATS.index(x.category) for x in products])
    ids = np.array([str(x.product_id) for x in products])
    np.savez(out, sm=sm, sp=sp, pm=pm, pp=pp, cat=cats, ids=ids)
    print(f"{out}: {len(products)} products, {time.time() - t0:.0f} s")


def category_batches(cats: np.ndarray, rng: np.random.Generator, run: int = 16, runs: int = 4):
    """One epoch's batches (index arrays): runs of ``run`` products of one category, ``runs``
    runs a batch, shuffled (``--same-category``'s batches, for precomputed maps)."""
    chunks = []
    for c in range(len(CATS)):
        idx = rng.permutation(np.flatnonzero(cats == c))
        chunks += [idx[i : i + run] for i in range(0, len(idx) - run + 1, run)]
    order = rng.permutation(len(chunks))
    return [
        np.concatenate([chunks[j] for j in order[i : i + runs]])
        for i in range(0, len(order) - runs + 1, runs)
    ]


def _load(files: list[str]) -> dict[str, np.ndarray]:
    zs = [np.load(f) for f in files]
    return {k: np.concatenate([z[k] for z in zs]) for k in zs[0].files}


def train(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tr, va = _load(args.train.split(",")), _load([args.valid])
    if args.arm == "pyramid":  # the second input is the stride-32 map
        deep, deep_va = _load(args.deep.split(",")), _load([args.deep_valid])
        tr["sp"], tr["pp"], va["sp"], va["pp"] = (
            deep["sm"],
            deep["pm"],
            deep_va["sm"],
            deep_va["pm"],
        )
    cfg = make_config("hybrid-lite0", "category", CATS)
    if args.arm == "s32":
        cfg = replace(cfg, trunk_stride=32, trunk_patch=1)
    m = create_model(cfg, seed=0)
    m.trunk = None
    with torch.no_grad():  # the model's own initial ln 100 unless told (not the CLI's ln 1/0.07)
        m.logit_scale.fill_(math.log(1 / args.temperature))
    extra: nn.Module | None = None
    if args.arm == "colour":
        extra = nn.Conv2d(3, 256, 4, 4)  # 28 × 28 pooled pixels → the 7 × 7 tokens
    elif args.arm == "pyramid":
        extra = nn.Conv2d(320, 256, 1, 1, bias=False)

    def embed(maps, second, c):
        x = m.conv1(maps.float())
        if extra is not None:
            x = x + extra(second.float())
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([m.class_embedding.expand(x.shape[0], 1, -1), x], 1) + m.positional_embedding
        if c is not None:
            x = torch.cat([x, m.condition_token(c)[:, None]], 1)
        h = m.ln_pre(x)
        *blocks, last = m.transformer.resblocks
        for b in blocks:
            h = b(h)
        h = last(h, queries=1)
        return F.normalize(m.ln_post(h[:, 0]) @ m.proj, dim=-1)

    params = list(m.parameters()) + (list(extra.parameters()) if extra is not None else [])
    no_decay = (m.positional_embedding, m.c_embedding.weight)
    decay = [p for p in params if p.ndim >= 2 and all(p is not q for q in no_decay)]
    rest = [p for p in params if all(p is not q for q in decay)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=args.lr
    )

    def batches():
        return category_batches(tr["cat"], rng)

    warm = len(batches())
    total = warm * args.epochs

    def lr_at(s):
        if s < warm:
            return args.lr * s / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))

    def t(a):
        return torch.from_numpy(a)

    def evaluate(d):
        m.eval()
        n = len(d["cat"])
        with torch.no_grad():
            q = torch.cat(
                [
                    embed(
                        t(d["sm"][i : i + 100]),
                        t(d["sp"][i : i + 100]),
                        t(d["cat"][i : i + 100]).long(),
                    )
                    for i in range(0, n, 100)
                ]
            )
            g = torch.cat(
                [
                    embed(t(d["pm"][i : i + 100]), t(d["pp"][i : i + 100]), None)
                    for i in range(0, n, 100)
                ]
            )
        m.train()
        order = (q @ g.T).argsort(1, descending=True)
        pos = (order == torch.arange(n)[:, None]).float().argmax(1)
        return float((pos < 1).float().mean()), float((pos < 10).float().mean())

    m.train()
    step, log, t0 = 0, [], time.time()
    for epoch in range(args.epochs):
        for b in batches():
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            c = t(tr["cat"][b]).long()
            q = embed(t(tr["sm"][b]), t(tr["sp"][b]), c)
            p = embed(t(tr["pm"][b]), t(tr["pp"][b]), None)
            logits = m.logit_scale.clamp(0, math.log(100)).exp() * q @ p.T
            labels = torch.arange(len(b))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        r1, r10 = evaluate(va)
        train_r1, _ = evaluate({k: v[:500] for k, v in tr.items()})
        row = dict(epoch=epoch + 1, loss=float(loss.detach()), r1=r1, r10=r10, train_r1=train_r1)
        row["minutes"] = (time.time() - t0) / 60
        log.append(row)
        print(args.arm, row, flush=True)
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("data", type=Path)
    e.add_argument("split")
    e.add_argument("start", type=int)
    e.add_argument("n", type=int)
    e.add_argument("out", type=Path)
    e.add_argument("--stride", type=int, choices=(16, 32), default=16)
    r = sub.add_parser("train")
    r.add_argument("arm", choices=ARMS)
    r.add_argument("--train", required=True, help="comma-separated extract files")
    r.add_argument("--valid", required=True)
    r.add_argument("--deep", help="the stride-32 extract files (pyramid)")
    r.add_argument("--deep-valid")
    r.add_argument("--epochs", type=int, default=6)
    r.add_argument("--lr", type=float, default=5e-4)
    r.add_argument(
        "--temperature",
        type=float,
        default=0.01,
        help="initial InfoNCE temperature (learned from there; default 0.01, the model's own; "
        "referred train starts from CLIP's 0.07)",
    )
    r.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "extract":
        extract(args.data, args.split, args.start, args.n, args.out, args.stride)
        return 0
    if args.arm == "pyramid" and not (args.deep and args.deep_valid):
        p.error("the pyramid arm needs --deep and --deep-valid (extract --stride 32)")
    log = train(args)
    if args.out:
        args.out.write_text(json.dumps(log, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
