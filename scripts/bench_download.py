#!/usr/bin/env python
"""``referred data prepare --download`` then ``--retry-failed``, timed, against a local server.

Writes a synthetic dataset, serves its images from 127.0.0.1 (``tests/data/image_server.py``)
with a share of them failing on purpose (404, 500, slow past the timeout, truncated, corrupt,
in equal parts), points the Hugging Face metadata at the server and runs the real CLI twice
(img2dataset from ``.cache/img2dataset/venv``, made on first use): the download, then, with
the server healed, the retry of the failed URLs. Prints each command's report, wall time and
the requests the server saw.

    python scripts/bench_download.py                              # ~1,800 images, 10% failing
    python scripts/bench_download.py --products 3000 --fail 0.3
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from img2dataset_venv import ensure_venv  # noqa: E402
from tests.data.conftest import dataset_images  # noqa: E402
from tests.data.image_server import MODES, ImageServer, point_metadata_at  # noqa: E402

from referred.data.convert import export_hf_metadata  # noqa: E402
from referred.data.synth import SynthConfig, write_synthetic_dataset  # noqa: E402


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--products", type=int, default=1000)
    p.add_argument("--distractors", type=int, default=200, help="per valid and test split")
    p.add_argument("--size", type=int, default=64, help="product image side (px)")
    p.add_argument("--fail", type=float, default=0.1, help="share of images failing (0.1)")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args(argv)

    exe = ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        config = SynthConfig(
            products=args.products, distractors=args.distractors, size=args.size, seed=11
        )
        write_synthetic_dataset(tmp / "ds", config)
        export_hf_metadata(tmp / "ds", tmp / "hf-synth")
        images = {u.removeprefix("synth:/"): b for u, b in dataset_images(tmp / "ds").items()}
        print(
            f"{len(images)} images ({sum(map(len, images.values())) / len(images) / 1024:.1f} "
            f"KiB on average) synthesised in {time.perf_counter() - t0:.1f} s"
        )
        failing = random.Random(0).sample(sorted(images), round(args.fail * len(images)))
        bad = [m for m in MODES if m != "ok"]
        modes = {path: bad[i % len(bad)] for i, path in enumerate(failing)}
        print("failing on purpose:", dict(Counter(modes.values())))
        with ImageServer(images, modes, slow_s=args.timeout + 6) as server:
            point_metadata_at(tmp / "hf-synth", tmp / "hf", server.url(""))
            cmd = [
                sys.executable, "-m", "referred", "data", "prepare", str(tmp / "hf"),
                str(tmp / "out"), "--images", str(tmp / "images"), "--img2dataset", str(exe),
                "--processes", str(args.processes), "--threads", str(args.threads),
                "--timeout", f"{args.timeout:g}", "--retries", "0",
            ]  # fmt: skip
            for flag in ("--download", "--retry-failed"):
                seconds, out = run([*cmd, flag])
                asked = server.take_requests()
                print(f"\n$ referred data prepare … {flag}: {seconds:.1f} s wall")
                print(
                    "\n".join(line for line in out.splitlines() if not line.startswith("running"))
                )
                print(f"server: {sum(asked.values())} requests, {len(asked)} distinct paths")
                server.heal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
