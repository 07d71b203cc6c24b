"""``referred benchmark --task cir``: composed retrieval on a FashionIQ-layout folder."""

from __future__ import annotations

import argparse
import sys


def run_cir(args: argparse.Namespace) -> int:
    from referred.cli import UserError

    if args.data is None or args.model is None:
        raise UserError(
            "--task cir needs --data (a FashionIQ-layout folder: captions/, image_splits/, "
            "images/) and --model (a model folder, with combiner.safetensors to score its "
            "Combiner)"
        )
    if args.embeddings is not None:
        raise UserError("--task cir embeds with --model; --embeddings is for --task rvs")
    if args.bootstrap != 0 and args.bootstrap < 2:
        raise UserError(f"--bootstrap must be 0 (no std) or at least 2, got {args.bootstrap}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    import torch

    from referred.data import DataFileError
    from referred.eval.cir_benchmark import run_cir_benchmark
    from referred.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    try:
        result = run_cir_benchmark(
            model,
            args.data,
            args.out,
            split=args.split,
            samples=args.bootstrap,
            seed=args.seed,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
            model_name=str(args.model).rstrip("/").split("/")[-1],
            progress=not args.no_progress,
        )
    except DataFileError as exc:
        raise UserError(str(exc)) from None
    print(result.table)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in result.paths.values())}", file=sys.stderr)
    return 0
