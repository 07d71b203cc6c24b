"""``referred embed``: a folder of images or a catalog file → an embeddings parquet."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed images into a parquet of (id, vector)",
        description="Embed a folder of images, or a parquet/CSV catalog with image bytes or "
        "paths, into OUT (parquet: id, vector). Re-running resumes (OUT records the model and "
        "the condition: another one is refused); unreadable images are skipped and listed.",
    )
    p.add_argument("input", help="a folder of images, or a .parquet/.csv catalog")
    p.add_argument("--model", required=True, help="weights file, folder or hub id")
    p.add_argument("--out", required=True, help="output .parquet file")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--category", help="condition every image on this category")
    cond.add_argument("--text", help="condition every image on this text")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from referred.cli import UserError
    from referred.embed import catalog_items, embed_items
    from referred.model import load_model

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    torch.set_num_threads(max(1, args.threads))
    model = load_model(args.model)
    if args.text is not None and model.config.cond_dim is None:
        raise UserError(
            "this model is conditioned on categories only; free text is not accepted. "
            f"Use --category with one of: {', '.join(model.config.categories) or '(none)'}"
        )
    items, total = catalog_items(args.input)
    report = embed_items(
        model,
        items,
        args.out,
        condition=args.category or args.text,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        total=total,
    )
    print(
        f"{report.output}: {report.total} embeddings ({report.embedded} new, "
        f"{report.already_done} already done), {len(report.failures)} skipped"
    )
    if report.failures:
        print(f"skipped {len(report.failures)} images:", file=sys.stderr)
        for item_id, reason in report.failures[:50]:
            print(f"  {item_id}: {reason}", file=sys.stderr)
        if len(report.failures) > 50:
            print(f"  … and {len(report.failures) - 50} more", file=sys.stderr)
        print(f"full list: {report.output}.failures.tsv", file=sys.stderr)
    return 0
