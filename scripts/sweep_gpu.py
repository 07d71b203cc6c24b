"""Rank settings of the CPU recipe on one GPU, each run at the CPU hour's number of steps.

An hour of one CPU thread trains `hybrid-lite0-128` (frozen trunk, close-ups) for ~2,500-3,300
steps; a GPU makes them in a minute or two, so one GPU call compares a dozen settings that do
not change what a step costs on the CPU (learning rate, weight decay, the batch's
same-category runs, the temperature's start, the warm-up), or whose cost is known (batch
size at equal epochs costs the same time), before the best is confirmed on the CPU
(docs/benchmarks.md). Every run trains on the same data for the same epochs from the same
seed; only its settings differ.

    python scripts/sweep_gpu.py --work W --out OUT [--variants FILE] [--budget-s 420]

draws ``referred data synth W/data --products 20000 --distractors 5000 --seed 2`` (the data of
the CPU runs) and its jittered close-ups, then trains every variant at once (each its own
process, 2 loader processes each) with ``--epochs`` (10: 2,500 steps of batch 64 on 16,000
products). OUT/sweep.json holds each variant's settings and validation curve, rewritten
every 15 s, so a call cut short keeps what finished. A variant file is a JSON list of
``{"name": ..., "config": {TrainConfig field: value}}``; the default list is
:data:`VARIANTS`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from train_demo_gpu import _referred  # this folder: python runs scripts with it on sys.path

#: The CPU recipe (docs/training.md, Zoom) as TrainConfig fields; device and loaders are the GPU's.
BASE = {
    "model": "hybrid-lite0-128",
    "conditioning": "category",
    "same_category": 16,
    "val_distractors": 500,
    "precision": "fp32",
    "device": "cuda",
    "workers": 2,
    "threads": 2,
    "seed": 0,
}
#: What each run changes (epochs: the same CPU time unless noted).
VARIANTS = [
    {"name": "base", "config": {}},
    {"name": "lr 1e-3", "config": {"lr": 1e-3}},
    {"name": "lr 2e-3", "config": {"lr": 2e-3}},
    {"name": "lr 2.5e-4", "config": {"lr": 2.5e-4}},
    {"name": "weight decay 0.5", "config": {"weight_decay": 0.5}},
    {"name": "same-category 32", "config": {"same_category": 32}},
    {"name": "batch 128, lr 7e-4", "config": {"batch_size": 128, "lr": 7e-4}},
    # not the same CPU time: what more steps (a faster step) would give
    {"name": "1.3x the epochs", "config": {"epochs_scale": 1.3}},
]


def cmd_one(args: argparse.Namespace) -> int:
    """One variant in this process: ``train(TrainConfig(**config))``."""
    from referred.train import TrainConfig, train

    config = json.loads(args.config)
    train(TrainConfig(**config), resume="never", progress=False)
    return 0


def _curve(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _configs(
    variants: list[dict], data: Path, work: Path, epochs: int, device: str
) -> dict[str, dict]:
    out = {}
    for i, variant in enumerate(variants):
        change = dict(variant["config"])
        scale = change.pop("epochs_scale", 1.0)
        name = variant["name"]
        config = {**BASE, "device": device, "epochs": round(epochs * scale), **change}
        config.update(data=str(data), out=str(work / "runs" / f"v{i:02d}"))
        out[name] = config
    return out


def _write(out: Path, state: dict) -> None:
    tmp = out / ".sweep.json"
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, out / "sweep.json")


def cmd_run(args: argparse.Namespace) -> int:
    t_end = time.monotonic() + args.budget_s
    work, out = args.work, args.out
    (work / "logs").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    variants = json.loads(args.variants.read_text()) if args.variants else VARIANTS
    data = args.data
    if data is None:
        workers = str(os.cpu_count() or 1)
        synth = ["--products", str(args.products), "--distractors", "5000", "--seed", "2"]
        logs = work / "logs"
        _referred("data", "synth", str(work / "data"), *synth, "--workers", workers,
                  log=logs / "synth.log", timeout=300)  # fmt: skip
        _referred("data", "closeups", str(work / "data"), str(work / "close"), "--jitter",
                  str(args.jitter), "--workers", workers, log=logs / "closeups.log",
                  timeout=300)  # fmt: skip
        data = work / "close"
    configs = _configs(variants, data, work, args.epochs, args.device)
    procs, started = {}, {}
    for name, config in configs.items():
        with open(work / "logs" / f"{Path(config['out']).name}.log", "w") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, __file__, "one", "--config", json.dumps(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started[name] = time.monotonic()
    state: dict = {}
    while True:
        running = [n for n, p in procs.items() if p.poll() is None]
        state = {
            name: {
                "config": configs[name],
                "status": "running"
                if procs[name].poll() is None
                else ("done" if procs[name].returncode == 0 else f"rc {procs[name].returncode}"),
                "seconds": time.monotonic() - started[name],
                "curve": _curve(Path(configs[name]["out"])),
            }
            for name in configs
        }
        _write(out, state)
        if not running or time.monotonic() > t_end:
            break
        time.sleep(15)
    for name in running:
        procs[name].kill()
        state[name]["status"] = "cut at the budget"
    _write(out, state)
    print(f"{'variant':<28} {'status':<18} {'epochs':>6} {'best val R@1':>12} {'last':>6}")
    for name, s in state.items():
        r1 = [row.get("val_R@1", float("nan")) for row in s["curve"]]
        best = f"{100 * max(r1):.1f}" if r1 else "-"
        last = f"{100 * r1[-1]:.1f}" if r1 else "-"
        print(f"{name:<28} {s['status']:<18} {len(r1):>6} {best:>12} {last:>6}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("run", help="draw the data and train every variant at once")
    p.add_argument("--work", type=Path, required=True, help="work folder (data, runs, logs)")
    p.add_argument("--out", type=Path, required=True, help="where sweep.json goes")
    p.add_argument("--data", type=Path, help="close-ups to train on (default: draw them)")
    p.add_argument("--variants", type=Path, help="JSON list of variants (default: VARIANTS)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of every run (10)")
    p.add_argument("--products", type=int, default=20000, help="synthetic products (20,000)")
    p.add_argument("--jitter", type=float, default=0.2, help="close-ups' jitter (0.2)")
    p.add_argument("--budget-s", type=float, default=420, help="wall time of the whole sweep")
    p.add_argument("--device", default="cuda", help="where the runs train (cuda)")
    p.set_defaults(func=cmd_run)
    p = verbs.add_parser("one", help="train one variant (what `run` starts)")
    p.add_argument("--config", required=True, help="TrainConfig fields as JSON")
    p.set_defaults(func=cmd_one)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
