"""What naming training images by view key saves: the same frozen-trunk run with and without.

A hybrid with a frozen trunk and fixed views (``--augment-views N >= 1``, the CPU recipe)
memoises each image's trunk map. Named by a digest of its pixels, every image is still read,
decoded, augmented, normalised and hashed at every step; named by its view key
(:func:`referred.train.pairs.view_key`), an image whose map is held is not decoded at all.
This trains the same run both ways, alternately, and reports the training samples/s of the
epochs after the first (every map memoised) and the ratio of their medians::

    referred data synth D --products 2500 --distractors 0 --seed 3 --workers 1
    referred data closeups D Z --jitter 0.2 --workers 1
    python scripts/bench_view_keys.py --data Z --model hybrid-lite0-128 --epochs 4 --repeats 2

Both ways give the same weights (tests/train/test_trunk_memo.py); only time differs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch


def run_once(data: str, model: str, epochs: int, keyed: bool, out: Path) -> list[float]:
    """Training samples/s of each epoch after the first."""
    from referred.train import TrainConfig, train
    from referred.train.pairs import PairDataset

    config = TrainConfig(
        data=data,
        out=str(out),
        model=model,
        conditioning="category",
        epochs=epochs,
        threads=1,
        same_category=16,
        val_distractors=50,
        seed=0,
    )
    # the baseline: no image has a view key, so the memo goes by a digest of the pixels
    unkeyed = mock.patch.object(PairDataset, "fixed_views", property(lambda self: False))
    with contextlib.nullcontext() if keyed else unkeyed:
        result = train(config, resume="never", progress=False)
    return [float(row["samples_per_s"]) for row in result.history[1:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a close-up dataset (training layout)")
    parser.add_argument("--model", default="hybrid-lite0-128")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rates: dict[str, list[float]] = {"pixel digest": [], "view key": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, keyed in (("pixel digest", False), ("view key", True)):
                got = run_once(args.data, args.model, args.epochs, keyed, Path(tmp) / f"{r}")
                rates[name] += got
                print(f"{name} #{r + 1}: samples/s after epoch 1: "
                      + ", ".join(f"{x:.1f}" for x in got), flush=True)  # fmt: skip
    base, keyed = (statistics.median(rates[k]) for k in ("pixel digest", "view key"))
    print(f"median samples/s: pixel digest {base:.1f}, view key {keyed:.1f}, "
          f"ratio {keyed / base:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
