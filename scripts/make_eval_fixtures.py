"""Write the benchmark fixtures under ``tests/fixtures/eval/`` (deterministic; commit them).

Usage: ``python scripts/make_eval_fixtures.py [--out tests/fixtures/eval]``

- ``bootstrapped_indices.pt``: in the format of LRVSF-Benchmark's official file, a
  ``torch.save``'d int32 tensor of shape ``(20, 1000)`` whose row ``i`` lists the test
  products of fold ``i`` (rows of ``products.parquet``, drawn with replacement). The
  official file indexes 2,000 products; this one indexes the first ``--products`` (30: the
  test split of the synthetic dataset the eval tests build).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/eval"))
    parser.add_argument("--products", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(11)
    folds = torch.randint(0, args.products, (20, 1000), generator=generator, dtype=torch.int32)
    torch.save(folds, args.out / "bootstrapped_indices.pt")
    print(f"wrote {args.out / 'bootstrapped_indices.pt'}: {tuple(folds.shape)} {folds.dtype}")


if __name__ == "__main__":
    main()
