"""Train the demo model of the web demo: hybrid CondViT, text conditioning, synthetic data.

Synthesises a training dataset, trains the CPU recipe (``hybrid-lite0``: the ImageNet
EfficientNet-Lite0 trunk, frozen and memoised, under a small transformer; docs/training.md) on
it within a time budget on one CPU thread, measures test recall, and writes ``config.json`` +
``model.safetensors`` (about 16 MB, fp32) to ``src/referred/assets/demo-model/``; the config
records the training run, this command and its test metrics. Deterministic given the same
number of steps (the budget is wall time, so a faster machine trains more)::

    python scripts/train_demo_model.py --minutes 45             # 45 min on one thread
    python scripts/train_demo_model.py --model tiny --minutes 15 --conditioning category

Text conditioning (the default) makes one model answer both a category chip (sent as its
name, "Bags") and free text ("a red striped scarf"): every training pair is conditioned on the
product's category name or one of its captions, at random (docs/training.md). The text encoder
is the frozen offline all-MiniLM-L6-v2 (``referred[text]``).

Recipe: the model's defaults (hybrid-lite0: batch 64, lr 5e-4, trunk frozen, one view per
image), batches of same-category runs (``--same-category``, in-batch hard negatives), and the
budget as the schedule's horizon. The data seed (1) differs from the demo catalog's (0), so the
products the demo shows were never seen in training.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import referred
from referred.data import open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.model.trunk_memo import TrunkMemo
from referred.train import TrainConfig, evaluate_split, train

DEST = Path(__file__).resolve().parents[1] / "src" / "referred" / "assets" / "demo-model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--dest", type=Path, default=DEST, help=f"output folder ({DEST})")
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--model", default="hybrid-lite0", help="architecture (hybrid-lite0)")
    parser.add_argument("--minutes", type=float, default=45.0, help="training budget")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--same-category", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--data-seed", type=int, default=1, help="synthetic data seed")
    parser.add_argument("--conditioning", choices=("text", "category"), default="text")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="referred-demo-"))
    data = work / "data"
    t0 = time.perf_counter()
    if not (data / "TRAIN").is_dir():
        synth = SynthConfig(
            products=args.products, distractors=args.distractors, seed=args.data_seed
        )
        print(write_synthetic_dataset(data, synth).summary(), flush=True)
    config = TrainConfig(
        data=str(data),
        out=str(work / "run"),
        model=args.model,
        conditioning=args.conditioning,
        epochs=args.epochs,
        augment=False,
        seed=args.seed,
        workers=0,
        threads=1,
        max_minutes=args.minutes,
        same_category=args.same_category,
        val_distractors=200,
    )
    result = train(config, resume="never", progress=False)
    model = referred.load_model(result.best)
    if model.trunk is not None:  # the evaluations below see each image up to three times
        model.trunk_memo = TrunkMemo(2_000_000_000)
    counts = (0, args.distractors)
    test = evaluate_split(model, open_dataset(data), "test", distractor_counts=counts)
    tests = {"caption" if model.config.cond_dim else "category": test["sweep"]}
    if model.config.cond_dim:  # a text model: also conditioned on the bare category name
        by_name = evaluate_split(
            model, open_dataset(data), "test", distractor_counts=counts, texts="category"
        )
        tests["category name"] = by_name["sweep"]
    minutes = (time.perf_counter() - t0) / 60
    saved = json.loads((result.best / "config.json").read_text())
    extra = {
        "training": saved["training"],
        "trained": saved["trained"],
        "demo": {
            "script": "scripts/train_demo_model.py",
            "command": " ".join(["python", "scripts/train_demo_model.py", *sys.argv[1:]]),
            "synth": {
                "products": args.products,
                "distractors": args.distractors,
                "seed": args.data_seed,
            },
            "test": {c: {str(n): m for n, m in t.items()} for c, t in tests.items()},
            "minutes": round(minutes, 1),
        },
    }
    if args.dest.exists():
        shutil.rmtree(args.dest)
    model.save_pretrained(args.dest, extra=extra)
    size = sum(p.stat().st_size for p in args.dest.iterdir()) / 1e6
    print(f"demo model: {args.dest} ({size:.1f} MB), {minutes:.1f} min")
    for cond, sweep in tests.items():
        print(
            f"  test, conditioned on the {cond}: R@1 {100 * sweep[0]['R@1']:.1f}% (+0), "
            f"{100 * sweep[args.distractors]['R@1']:.1f}% (+{args.distractors} distractors), "
            f"R@10 {100 * sweep[0]['R@10']:.1f}% / {100 * sweep[args.distractors]['R@10']:.1f}%, "
            f"Cat@1 {100 * sweep[args.distractors]['Cat@1']:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
