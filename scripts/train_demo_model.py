"""Train the demo model of the web demo: hybrid CondViT, text conditioning, synthetic data.

Synthesises a training dataset, trains the CPU recipe (``hybrid-lite0``: the ImageNet
EfficientNet-Lite0 trunk, frozen and memoised, under a small transformer; docs/training.md) on
it within a time budget on one CPU thread, measures test recall, and writes ``config.json`` +
``model.safetensors`` (about 16 MB, fp32) to ``src/referred/assets/demo-model/``; the config
records the training run, this command and its test metrics. Deterministic given the same
number of steps (the budget is wall time, so a faster machine trains more)::

    python scripts/train_demo_model.py --minutes 45             # 45 min on one thread
    python scripts/train_demo_model.py --model tiny --minutes 15 --conditioning category
    python scripts/train_demo_model.py --work W --run W/run     # package a finished run

Besides the model, it writes the demo catalog's vectors (``catalog_vectors.npz``: the demo
starts without embedding its catalog, see ``referred.demo``) and measures, on the demo's own
sample scenes, how often each worn item's chip returns the exact product first and among the
12 shown (recorded in the config, held by ``tests/web/test_app_demo.py``).

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
    parser.add_argument("--data", type=Path, help="training data (default WORK/data, drawn)")
    parser.add_argument("--run", type=Path, help="a finished run to package (no training)")
    parser.add_argument(
        "--made-by", help="with --run: the command(s) that made the run, for the record"
    )
    parser.add_argument(
        "--eval-distractors", type=int, help="test distractors for the record (default all)"
    )
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
    data = args.data or work / "data"
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
        augment=args.model != "tiny",  # tiny: no crop/flip; hybrid: one view per image anyway
        seed=args.seed,
        workers=0,
        threads=1,
        max_minutes=args.minutes,
        same_category=args.same_category,
        val_distractors=200,
    )
    if args.run is None:
        best = train(config, resume="never", progress=False).best
    else:
        best = args.run / "best"
    model = referred.load_model(best)
    if model.trunk is not None:  # the evaluations below see each image up to three times
        model.trunk_memo = TrunkMemo(2_000_000_000)
    n_eval = args.distractors if args.eval_distractors is None else args.eval_distractors
    counts = (0, n_eval)
    test = evaluate_split(model, open_dataset(data), "test", distractor_counts=counts)
    tests = {"caption" if model.config.cond_dim else "category": test["sweep"]}
    if model.config.cond_dim:  # a text model: also conditioned on the bare category name
        by_name = evaluate_split(
            model, open_dataset(data), "test", distractor_counts=counts, texts="category"
        )
        tests["category name"] = by_name["sweep"]
    minutes = (time.perf_counter() - t0) / 60
    saved = json.loads((best / "config.json").read_text())
    extra = {
        "training": saved["training"],
        "trained": saved["trained"],
        "demo": {
            "script": "scripts/train_demo_model.py",
            "command": args.made_by
            or " ".join(["python", "scripts/train_demo_model.py", *sys.argv[1:]]),
            "data": str(data),
            # what this script drew; None: given --data (its command is in "command")
            "synth": None
            if args.data is not None
            else {
                "products": args.products,
                "distractors": args.distractors,
                "seed": args.data_seed,
            },
            "test": {c: {str(n): m for n, m in t.items()} for c, t in tests.items()},
            # the training's wall time (of a packaged run: the run's, up to its best epoch)
            "minutes": round(
                minutes if args.run is None else saved["trained"]["wall_seconds"] / 60, 1
            ),
        },
    }
    if args.dest.exists():
        shutil.rmtree(args.dest)
    model.save_pretrained(args.dest, extra=extra)
    shares = demo_check(args.dest)
    written = json.loads((args.dest / "config.json").read_text())
    written["demo"]["sample_scenes"] = shares
    (args.dest / "config.json").write_text(json.dumps(written, indent=2) + "\n")
    size = sum(p.stat().st_size for p in args.dest.iterdir()) / 1e6
    print(f"demo model: {args.dest} ({size:.1f} MB), {minutes:.1f} min")
    for cond, sweep in tests.items():
        print(
            f"  test, conditioned on the {cond}: R@1 {100 * sweep[0]['R@1']:.1f}% (+0), "
            f"{100 * sweep[n_eval]['R@1']:.1f}% (+{n_eval} distractors), "
            f"R@10 {100 * sweep[0]['R@10']:.1f}% / {100 * sweep[n_eval]['R@10']:.1f}%, "
            f"Cat@1 {100 * sweep[n_eval]['Cat@1']:.1f}%"
        )
    print(
        f"  demo sample scenes ({shares['pairs']} worn items, chip = category name): exact "
        f"product first {100 * shares['first']:.0f}%, among the 12 shown "
        f"{100 * shares['in_12']:.0f}%"
    )
    return 0


def demo_check(dest: Path) -> dict:
    """Write the demo catalog's vectors next to the model and measure the sample-scene shares
    (the demo's own catalog and samples, built in a temporary folder)."""
    from referred.demo import (
        embed_catalog,
        ensure_demo_data,
        export_catalog,
        sample_shares,
        save_catalog_vectors,
    )
    from referred.index import create_index
    from referred.search import Searcher

    model = referred.load_model(dest)  # exactly what the demo will load
    with tempfile.TemporaryDirectory(prefix="referred-demo-check-") as tmp:
        catalog = export_catalog(ensure_demo_data(Path(tmp) / "data"), Path(tmp) / "catalog")
        vectors = embed_catalog(model, catalog)
        save_catalog_vectors(model, catalog, vectors, dest)
        index = create_index("flat", model.config.output_dim)
        index.add([r[0] for r in catalog.records], vectors, [r[2] for r in catalog.records])
        return sample_shares(Searcher(model, index), catalog)


if __name__ == "__main__":
    sys.exit(main())
