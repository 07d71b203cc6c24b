"""Train the demo model's Combiner ("this, but in red") and ship it inside the demo model.

Draws the synthetic composed-retrieval set (FashionIQ layout, ``referred data synth --task
cir``), trains a Combiner over the bundled demo CondViT (frozen: the catalog vectors and any
index stay valid; ``referred train --task cir``), benchmarks it beside the training-free
baselines on the test split (``referred benchmark --task cir``), and writes
``combiner.safetensors`` (float16, about 1 MB) into ``src/referred/assets/demo-model/``
with the data config, the commands and the test figures in its record, so that
``referred benchmark --task cir --model src/referred/assets/demo-model`` (no ``--data``)
redraws the same set and reproduces them::

    python scripts/train_demo_combiner.py --work /tmp/cir-demo   # ~3 h on 1 shared thread
    python scripts/train_demo_combiner.py --work W --no-train    # package W/run/best

Retraining the demo CondViT (scripts/train_demo_model.py) changes its catalog space: train
its Combiner again afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

import referred
from referred.cir.io import load_head, save_head
from referred.data.synth.cir import META_FILE, CIRSynthConfig, write_cir_dataset
from referred.eval.cir_benchmark import run_cir_benchmark
from referred.train.cir import train_cir
from referred.train.cir_config import CIRTrainConfig

DEMO = Path(__file__).resolve().parents[1] / "src" / "referred" / "assets" / "demo-model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="work folder (data, run, bench)")
    parser.add_argument("--model", type=Path, default=DEMO, help=f"the CondViT ({DEMO})")
    parser.add_argument("--dest", type=Path, default=None, help="where to ship (--model)")
    parser.add_argument("--train", type=int, default=4000, help="train references a category")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--epochs", type=int, default=40)
    # the shipped Combiner's recipe (docs/cir.md, "Results on the synthetic set")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--temperature", type=float, default=CIRTrainConfig.temperature)
    parser.add_argument("--no-train", action="store_true", help="package WORK/run/best as is")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data, run = args.work / "data", args.work / "run"
    synth = CIRSynthConfig(train=args.train, seed=args.seed)
    if not (data / META_FILE).is_file():
        print(write_cir_dataset(data, synth).summary(), flush=True)
    config = CIRTrainConfig(
        data=str(data), out=str(run), model=str(args.model), epochs=args.epochs,
        hidden=args.hidden, dropout=args.dropout, temperature=args.temperature, threads=1,
    )  # fmt: skip
    # the Combiner's flags that differ from `referred train --task cir`'s defaults
    flags = "".join(
        f" --{name} {getattr(config, name)}"
        for name in ("hidden", "dropout", "temperature")
        if getattr(config, name) != getattr(CIRTrainConfig, name)
    )
    if not args.no_train:
        train_cir(config)
    model = referred.load_model(run / "best")
    bench = run_cir_benchmark(
        model, data, args.work / "bench", cache_dir=run / "cache", model_name="demo-model"
    )
    head = load_head(run / "best")
    assert head is not None
    synth_record = {k: v for k, v in asdict(synth).items() if k != "categories"}
    head.record = {
        **head.record,
        "data": "synthetic",
        "synth": {**synth_record, "categories": dict(synth.categories)},
        "commands": [
            f"referred data synth DATA --task cir --products {args.train} --seed {args.seed}",
            f"referred train --task cir --data DATA --out RUN --model {args.model.name} "
            f"--epochs {args.epochs}{flags} --threads 1",
            "referred benchmark --task cir --data DATA --model RUN/best --out BENCH",
        ],
        "script": " ".join(["python", "scripts/train_demo_combiner.py", *sys.argv[1:]]),
        "test": {m: s["average"] for m, s in bench.report["methods"].items()},
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    dest = args.dest or args.model
    path = save_head(dest, head)
    print(bench.table)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")
    (args.work / "record.json").write_text(json.dumps(head.record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
