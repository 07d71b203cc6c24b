"""Train the demo CondViT on one GPU in minutes: the zooming text model, its locator, presence
head and score floor, on a machine that has no sentence encoder and no network.

Two steps, one on each machine::

    # 1. here (has the offline sentence encoder): draw the same synthetic data and save the
    #    vectors of every text it holds (category names and captions, all splits)
    python scripts/train_demo_gpu.py texts --data D --out TEXTS
    # 2. on the GPU host (16 cores, CUDA torch, the EfficientNet-Lite0 weights on PYTHONPATH):
    #    draw D again (same seed, same bytes), cut its close-ups, train, fit the side heads
    python scripts/train_demo_gpu.py run --texts TEXTS --work W --out OUT

``run`` draws ``referred data synth W/data --products 40000 --distractors 1000 --seed 2``
(the seed the demo catalog, seed 0, does not use), writes its close-up copy (``referred data
closeups``), trains ``hybrid-lite0`` with text conditioning on the close-ups (the trunk
fine-tuned at a tenth of the learning rate, a fresh augmentation of every image each time,
batches of same-category runs, the time budget as the schedule's horizon), then, while the
budget lasts, fits the locator, the presence head and the score floor on the whole scenes
(``referred train --task locator|floor|presence``; these run on the host's CPU: on the H100
host of 2026-11-27 the locator alone outlasted 167 s, so fit them afterwards where the data
is, e.g. on the same data drawn here). The sentence encoder is replaced by the saved vectors
(:class:`referred.model.text.TextTable`), which refuse any text they lack. After each stage the
model folder so far is packed into ``OUT/model.tgz`` (so a stage cut short loses only itself),
with the logs and the training curve beside it. Package the result for the demo with
``scripts/train_demo_model.py --run`` on a machine with the encoder (docs/training.md, "The
demo model").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SYNTH = ["--distractors", "1000", "--seed", "2"]  # with --products (default 40,000)


def dataset_texts(roots: list[Path]) -> list[str]:
    """Every text a text-conditioned job on these datasets may ask for: the category names,
    the placeholder "product", and each product's captions (all splits, held-out style too)."""
    from referred.categories import LRVSF_CATEGORIES
    from referred.data import open_dataset

    texts = dict.fromkeys([*LRVSF_CATEGORIES, "product"])
    for root in roots:
        for folder in (root, root / "heldout_style"):
            if not folder.is_dir():
                continue
            dataset = open_dataset(folder)
            for split in dataset.splits:
                for product in dataset.products(split):
                    texts.update(dict.fromkeys(product.captions))
    return list(texts)


def cmd_texts(args: argparse.Namespace) -> int:
    import torch

    from referred.model.config import DEFAULT_TEXT_ENCODER
    from referred.model.text import load_text_encoder, save_text_vectors
    from referred.train.captions import encode_texts

    texts = dataset_texts(args.data)
    encoder = load_text_encoder(DEFAULT_TEXT_ENCODER)
    vectors = torch.from_numpy(encode_texts(encoder, texts))
    args.out.mkdir(parents=True, exist_ok=True)
    save_text_vectors(args.out, DEFAULT_TEXT_ENCODER, dict(zip(texts, vectors)))
    print(f"{len(texts)} texts of {[str(d) for d in args.data]} saved in {args.out}")
    return 0


def _referred(*argv: str, log: Path, timeout: float) -> None:
    """``python -m referred ARGV`` with its output in ``log``; CalledProcessError on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(
            [sys.executable, "-m", "referred", *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=max(timeout, 1),
        )
    label = " ".join(argv[:4:2] if argv[0] == "train" else argv[:2])  # "train locator"
    print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)


PART = 15 * 2**20  # what comes back from the GPU host: files of at most 16 MiB


def _pack(model: Path, logs: Path, out: Path) -> None:
    """``out/model.tgz.NN``: the model folder as it stands, in parts of at most 15 MiB (join
    them with ``cat``); ``out/logs.tgz``: the logs so far. Each written whole, then renamed."""
    tmp = logs / "model.tgz"
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(model, arcname="model")
    data = tmp.read_bytes()
    tmp.unlink()
    for old in out.glob("model.tgz.*"):
        old.unlink()
    for i in range(0, len(data), PART):
        part = out / f".part{i // PART:02d}"
        part.write_bytes(data[i : i + PART])
        os.replace(part, out / f"model.tgz.{i // PART:02d}")
    _pack_logs(logs, out)
    print(f"packed {model.name} ({len(data) / 1e6:.1f} MB)", flush=True)


def _pack_logs(logs: Path, out: Path) -> None:
    with tarfile.open(out / ".logs.tgz", "w:gz") as tar:
        tar.add(logs, arcname="logs")
    os.replace(out / ".logs.tgz", out / "logs.tgz")


def cmd_run(args: argparse.Namespace) -> int:
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, logs)
    finally:  # whatever happened, the logs come back
        _pack_logs(logs, args.out)


def _run(args: argparse.Namespace, logs: Path) -> int:
    import torch

    from referred.model.config import DEFAULT_TEXT_ENCODER
    from referred.model.text import TextTable
    from referred.train import TrainConfig, train

    t_end = time.monotonic() + args.budget_s
    work, out = args.work, args.out
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(logs / "train.log"), logging.StreamHandler(sys.stdout)],
    )
    data, close = work / "data", work / "close"
    workers = str(os.cpu_count() or 1)
    synth = ["--products", str(args.products), *SYNTH, "--workers", workers]
    _referred("data", "synth", str(data), *synth, log=logs / "synth.log", timeout=300)
    table = TextTable.load(args.texts, DEFAULT_TEXT_ENCODER)
    missing = [t for t in dataset_texts([data]) if t not in table.vectors]
    if missing:  # not the data the vectors were made for: stop before the expensive part
        raise SystemExit(f"{len(missing)} texts of {data} have no vector, e.g. {missing[:3]}")
    _referred(
        "data",
        "closeups",
        str(data),
        str(close),
        "--workers",
        workers,
        log=logs / "closeups.log",
        timeout=300,
    )
    minutes = min(args.minutes, (t_end - time.monotonic() - args.reserve_s) / 60)
    config = TrainConfig(
        data=str(close),
        out=str(work / "run"),
        model="hybrid-lite0",
        conditioning="text",
        epochs=40,
        batch_size=args.batch_size,
        seed=0,
        workers=max(int(workers) - 1, 0),
        device="cuda" if torch.cuda.is_available() else "cpu",
        max_minutes=minutes,
        trunk_lr_scale=0.1,
        augment_views=0,
        same_category=16,
        val_distractors=200,
        log_every=50,
    )
    print(f"training {minutes:.1f} min on {config.device}", flush=True)
    best = train(config, resume="never", progress=False, text_encoder=table).best
    (out / "metrics.csv").write_bytes((work / "run" / "metrics.csv").read_bytes())
    _pack(best, logs, out)
    model = best
    for task in ("locator", "floor", "presence"):  # each beside the last one's copy
        left = t_end - time.monotonic()
        if left < 45:
            print(f"{task}: skipped, {left:.0f} s left", flush=True)
            break
        dest = work / task
        try:
            _referred(
                "train",
                "--task",
                task,
                "--model",
                str(model),
                "--data",
                str(data),
                "--out",
                str(dest),
                log=logs / f"{task}.log",
                timeout=left - 15,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"{task}: failed ({exc}); see {task}.log", flush=True)
            break
        model = dest
        _pack(model, logs, out)
    (out / "done.json").write_text(json.dumps({"model": model.name}) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("texts", help="save the vectors of every text of datasets (here)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders")
    p.add_argument("--out", type=Path, required=True, help="folder of the vectors")
    p.set_defaults(func=cmd_texts)
    p = verbs.add_parser("run", help="draw, cut, train and fit on the GPU host")
    p.add_argument("--texts", type=Path, required=True, help="folder written by `texts`")
    p.add_argument("--work", type=Path, required=True, help="work folder (data, runs)")
    p.add_argument("--out", type=Path, required=True, help="what comes back (model.tgz, logs)")
    p.add_argument("--budget-s", type=float, default=560, help="wall time of the whole run")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget at most")
    p.add_argument("--reserve-s", type=float, default=150, help="kept for the side heads")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--products", type=int, default=40000, help="synthetic products (40,000)")
    p.set_defaults(func=cmd_run)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
