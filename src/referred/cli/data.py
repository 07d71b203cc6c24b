"""``referred data``: ``synth``, ``check`` and ``prepare`` LRVS-F datasets.

A thin layer: parse strings, build the frozen configs, call :mod:`referred.data`, print.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive(text)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data`` and its subcommands to the top-level subparsers."""
    parser = sub.add_parser(
        "data",
        help="synthesise, check and prepare LRVS-F datasets",
        description="Synthesise, check and prepare Referred Visual Search datasets "
        "(see docs/data.md).",
    )
    verbs = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    _register_synth(verbs)
    _register_check(verbs)
    _register_prepare(verbs)


def _register_synth(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "synth",
        help="write a synthetic RVS dataset in the training layout",
        description="Draw products of the 10 categories, dress figures in outfits of 3-5 of "
        "them, and write train/valid/test splits with distractors. Same seed, same bytes.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (absent or empty)")
    p.add_argument("--products", type=_positive, default=1000, help="products (default 1000)")
    p.add_argument(
        "--distractors",
        type=_non_negative,
        default=1000,
        help="distractors for each of valid and test (default 1000)",
    )
    p.add_argument(
        "--size", type=_positive, default=224, help="product image side in pixels (default 224)"
    )
    p.add_argument(
        "--scene-size",
        type=_positive,
        default=None,
        help="scene image side in pixels (default: size x 8/7, 256 for 224)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=_positive, default=1, help="rendering processes (default 1)")
    p.add_argument(
        "--heldout-style",
        default="sketch",
        metavar="STYLE",
        help="rendering style kept out of training and drawn only in the held-out test set "
        "OUT/heldout_style/ (default sketch; 'none': every style everywhere, no such set)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous dataset in OUT")
    p.set_defaults(func=run_synth)


def _register_check(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "check",
        help="validate a dataset folder and list its problems",
        description="Read every split of a dataset (any layout) and list unreadable images, "
        "incomplete products, unknown categories, missing files and metadata that disagrees "
        "with the shards. Exit code 0 only when there is no error.",
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="dataset folder (or catalog table)")
    p.add_argument(
        "--layout",
        choices=("training", "hf", "zenodo", "catalog"),
        help="skip detection and read ROOT as this layout",
    )
    p.add_argument(
        "--no-decode", action="store_true", help="do not decode images (structure only, fast)"
    )
    p.add_argument("--limit", type=_non_negative, default=50, help="problems to list (default 50)")
    p.set_defaults(func=run_check)


def _register_prepare(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "prepare",
        help="build the training layout from Hugging Face metadata and img2dataset images",
        description="Match the images fetched by img2dataset (parquet or webdataset output) "
        "to the Hugging Face metadata by URL and write the training layout. Resumable and "
        "idempotent: complete outputs are skipped.",
    )
    p.add_argument("hf_root", type=Path, metavar="HF_ROOT", help="Hugging Face metadata folder")
    p.add_argument("out", type=Path, metavar="OUT", help="training-layout folder to build")
    p.add_argument("--images", type=Path, required=True, help="img2dataset output folder")
    p.add_argument(
        "--download",
        action="store_true",
        help="first run img2dataset (needs network and img2dataset in its own virtualenv)",
    )
    p.add_argument("--img2dataset", type=Path, help="img2dataset executable (default: PATH)")
    p.add_argument(
        "--format",
        choices=("parquet", "webdataset"),
        default="parquet",
        help="img2dataset output format for --download (default parquet)",
    )
    p.add_argument("--processes", type=_positive, default=2, help="img2dataset processes")
    p.add_argument(
        "--shard-size", type=_positive, default=1000, help="products per TRAIN tar (1000)"
    )
    p.add_argument(
        "--dist-shard-size", type=_positive, default=10_000, help="distractors per file (10000)"
    )
    p.add_argument(
        "--no-verify", action="store_true", help="do not decode images to drop corrupt ones"
    )
    p.set_defaults(func=run_prepare)


def run_synth(args: argparse.Namespace) -> int:
    """``referred data synth``."""
    from referred.data.synth import SynthConfig, write_synthetic_dataset

    config = SynthConfig(
        products=args.products,
        distractors=args.distractors,
        size=args.size,
        scene_size=args.scene_size,
        seed=args.seed,
        workers=args.workers,
        heldout_style=None if args.heldout_style.lower() == "none" else args.heldout_style,
    )
    report = write_synthetic_dataset(args.out, config, overwrite=args.overwrite)
    print(report.summary())
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``referred data check``: problems, then the summary; 0 only when usable."""
    from referred.data.check import check_dataset

    report = check_dataset(args.root, layout=args.layout, decode=not args.no_decode)
    problems = report.stats.problems
    for problem in problems[: args.limit]:
        print(problem)
    hidden = report.stats.errors + report.stats.warnings - min(len(problems), args.limit)
    if hidden > 0:
        print(f"... {hidden} more problems not listed (raise --limit)")
    for line in report.summary_lines():
        print(line)
    return 0 if report.ok else 1


def run_prepare(args: argparse.Namespace) -> int:
    """``referred data prepare`` (optionally after ``img2dataset``)."""
    from referred.data.hf import HFMetadataDataset
    from referred.data.prepare import (
        PrepareConfig,
        find_img2dataset,
        img2dataset_command,
        prepare_dataset,
        run_img2dataset,
        wanted_urls,
        write_url_list,
    )

    config = PrepareConfig(
        hf_root=args.hf_root,
        images=args.images,
        out=args.out,
        shard_size=args.shard_size,
        dist_shard_size=args.dist_shard_size,
        verify=not args.no_verify,
    )
    if args.download:
        exe = find_img2dataset(args.img2dataset)
        urls = list(wanted_urls(HFMetadataDataset(args.hf_root)))
        url_list = write_url_list(urls, args.out / ".prepare" / "urls.parquet")
        command = img2dataset_command(
            exe, url_list, args.images, output_format=args.format, processes=args.processes
        )
        print("running:", " ".join(command))
        run_img2dataset(command)
    report = prepare_dataset(config)
    for problem in report.stats.problems[:20]:
        print(problem)
    for line in report.summary_lines():
        print(line)
    kept = sum(c.kept for c in report.products.values())
    if not kept:
        print("no product could be kept: check --images points at the img2dataset output")
    return 0 if kept else 1
