"""``referred benchmark --task cir``: composed retrieval on a FashionIQ-layout folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_cir(args: argparse.Namespace) -> int:
    from referred.cli import UserError

    if args.model is None:
        raise UserError(
            "--task cir needs --model (a model folder, with combiner.safetensors to score its "
            "Combiner) and --data (a FashionIQ-layout folder: captions/, image_splits/, images/; "
            "optional when the Combiner records the synthetic set it was trained on)"
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
    data = args.data if args.data is not None else _recorded_data(model, args.out)
    try:
        result = run_cir_benchmark(
            model,
            data,
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


def _recorded_data(model, out: str) -> Path:
    """The synthetic set the model's Combiner records, drawn into OUT/data once (the same
    config gives the same bytes, so the figures recorded with it reproduce)."""
    from referred.cli import UserError
    from referred.data.synth.cir import META_FILE, CIRSynthConfig, write_cir_dataset

    head = getattr(model, "cir_head", None)
    synth = (head.record if head is not None else {}).get("synth")
    if synth is None:
        raise UserError(
            "give --data (a FashionIQ-layout folder): the model has no Combiner that records "
            "the synthetic set it was trained on"
        )
    data = Path(out) / "data"
    if not (data / META_FILE).is_file():
        print(f"drawing the recorded synthetic set into {data} (once) ...", file=sys.stderr)
        print(write_cir_dataset(data, CIRSynthConfig(**synth)).summary(), file=sys.stderr)
    return data
