"""``referred benchmark``: the LRVS-F benchmark of a model (or of precomputed embeddings).

``referred benchmark --data ROOT --model PATH [--out DIR] ...`` writes ``report.json``,
``table.md``, ``model_card.yaml`` and ``r1.png``; ``referred benchmark plot a.json b.json
--out plot.png`` draws several reports on one figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_COUNTS = "0,10000,100000,1000000,2000000"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="LRVS-F benchmark: R@K, Cat@K, filtered R@K against up to 2M distractors",
        description="Embed the test queries, targets and distractors of a dataset (resumable: "
        "re-running reuses DIR/embeddings/), rank them exactly, and write report.json, "
        "table.md, model_card.yaml and r1.png to DIR. `referred benchmark plot A.json B.json "
        "--out P.png` compares reports.",
    )
    p.add_argument(
        "--task",
        choices=("rvs", "cir"),
        default="rvs",
        help="rvs (default): the LRVS-F benchmark; cir: composed retrieval on a FashionIQ-layout "
        "--data, R@10/R@50 per category for the model's Combiner and the training-free "
        "baselines (docs/cir.md)",
    )
    p.add_argument("--data", help="dataset folder (training layout, Zenodo, Hugging Face)")
    p.add_argument("--model", help="weights file, folder or hub id")
    p.add_argument(
        "--embeddings",
        help="folder of paper-era embeddings (products_embs.parquet, dist*.parquet) used "
        "instead of --model; --data then needs only the metadata files, no images",
    )
    p.add_argument(
        "--conditioning",
        choices=("category", "text", "none"),
        help="query condition (default: the model's own)",
    )
    p.add_argument(
        "--distractors",
        default=None,
        help=f"comma-separated distractor counts; a count above the distractors that exist is "
        f"an error. Default: the paper's {DEFAULT_COUNTS}, those above what exists replaced by "
        "all of them, with a warning",
    )
    p.add_argument(
        "--allow-fewer-distractors",
        action="store_true",
        help="serve counts above the distractors that exist with all of them (a warning)",
    )
    p.add_argument("--out", default="benchmark", help="output folder (default ./benchmark)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the LRVSF-Benchmark draws")
    p.add_argument(
        "--lrvsf-indices",
        metavar="PT",
        help="the official bootstrapped_indices.pt: the products of the LRVSF-Benchmark folds "
        "(default: drawn from --seed)",
    )
    p.add_argument(
        "--decode",
        choices=("default", "reference"),
        default="default",
        help="image decoding: default (EXIF rotation, transparency over white) or reference "
        "(the authors' plain convert('RGB'), for parity with published numbers)",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also report the unconditional queries, and those with a category filter",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="embed in this process, or in Ray tasks (same vectors, same cache)",
    )
    p.add_argument("--ray-address", help="Ray cluster address (default: a local Ray, 2 CPUs)")
    p.add_argument("--workers", type=int, help="Ray tasks at a time (default: the cluster's CPUs)")
    p.add_argument("--no-progress", action="store_true")
    cir = p.add_argument_group("--task cir")
    cir.add_argument(
        "--split", help="split to evaluate (default test when it has captions, else val)"
    )
    cir.add_argument(
        "--bootstrap", type=int, default=200, help="redraws of the triplets for the std (200)"
    )
    cir.add_argument(
        "--cache-dir",
        help="vector cache (default OUT/embeddings; a `train --task cir` run's OUT/cache reuses "
        "its vectors)",
    )
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    plot = actions.add_parser("plot", help="draw several report.json files on one figure")
    plot.add_argument("reports", nargs="+", help="report.json files")
    plot.add_argument("--out", dest="plot_out", required=True, help="image file (.png, .svg)")
    plot.add_argument("--metric", default="R@1", help="R@1, R@10, Cat@1, filtered_R@1, ...")
    plot.set_defaults(func=run_plot)


def parse_counts(text: str) -> list[int]:
    """``"0,10K,1M"`` → ``[0, 10000, 1000000]``."""
    from referred.cli import UserError

    counts = []
    for part in text.split(","):
        token = part.strip().upper().replace("_", "")
        scale = {"K": 1_000, "M": 1_000_000}.get(token[-1:], 1)
        digits = token[:-1] if scale > 1 else token
        if not digits.isdigit():
            raise UserError(f"--distractors: {part!r} is not a count (e.g. 0,10000,100K,2M)")
        counts.append(int(digits) * scale)
    return counts


def run(args: argparse.Namespace) -> int:
    from referred.cli import UserError

    if args.task == "cir":
        from referred.cli.benchmark_cir import run_cir

        if args.engine != "local" or args.ray_address or args.workers:
            raise UserError("--engine ray runs the rvs benchmark; --task cir embeds locally")

        return run_cir(args)
    if args.data is None:
        raise UserError("--data is required (the dataset folder)")
    if (args.model is None) == (args.embeddings is None):
        raise UserError("give exactly one of --model and --embeddings")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.ray_address and args.engine != "ray":
        raise UserError("--ray-address needs --engine ray")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    counts = parse_counts(args.distractors or DEFAULT_COUNTS)
    # the paper's default counts fit the real 2M-distractor set: on smaller data, say so
    allow_fewer = args.allow_fewer_distractors or args.distractors is None
    model = name = None
    if args.model is not None:
        import torch

        from referred.model import load_model

        if args.threads:
            torch.set_num_threads(args.threads)
        from referred.query import QueryEncoder

        # the one query path (condition rules, fast forward), as the Searcher and embed use
        model = QueryEncoder(load_model(args.model), batch_size=args.batch_size)
        name = str(args.model).rstrip("/").split("/")[-1]
    from referred.data import DataFileError
    from referred.eval.embeddings import MissingEmbeddingsError
    from referred.eval.runner import run_benchmark

    if args.lrvsf_indices is not None and not Path(args.lrvsf_indices).is_file():
        raise UserError(f"--lrvsf-indices: {args.lrvsf_indices} is not a file")
    try:
        result = run_benchmark(
            model,
            args.data,
            out_dir=args.out,
            distractor_counts=counts,
            conditioning=args.conditioning,
            embeddings=args.embeddings,
            baselines=args.baselines,
            seed=args.seed,
            lrvsf_indices=args.lrvsf_indices,
            allow_fewer_distractors=allow_fewer,
            decode=args.decode,
            batch_size=args.batch_size,
            model_name=name,
            progress=not args.no_progress,
            engine=args.engine,
            ray_address=args.ray_address,
            workers=args.workers,
        )
    except (MissingEmbeddingsError, DataFileError, ImportError) as exc:
        raise UserError(str(exc)) from None
    print(result.table)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in result.paths.values())}", file=sys.stderr)
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from referred.eval.plot import plot_reports

    out = plot_reports(args.reports, args.plot_out, metric=args.metric)
    print(out)
    return 0
