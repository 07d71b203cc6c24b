"""``referred data``: ``synth``, ``check``, ``prepare`` and ``dedup`` LRVS-F datasets.

A thin layer: parse strings, build the frozen configs, call :mod:`referred.data`, print.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from referred.cli.train import non_negative_float


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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


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
    _register_dedup(verbs)
    _register_closeups(verbs)


def _register_synth(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "synth",
        help="write a synthetic RVS dataset in the training layout",
        description="Draw products of the 10 categories, dress figures in outfits of 3-5 of "
        "them, and write train/valid/test splits with distractors. Same seed, same bytes.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (absent or empty)")
    p.add_argument(
        "--task",
        choices=("rvs", "cir"),
        default="rvs",
        help="rvs (default): the RVS training layout; cir: composed-retrieval triplets in the "
        "FashionIQ layout (a reference, two edited versions, four triplets; --products: "
        "training references per category, 100 val and 250 test ones; --size and --seed "
        "apply; docs/cir.md)",
    )
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
        "idempotent: complete outputs are skipped. With --download, img2dataset fetches the "
        "images first and the failures are reported by reason; --retry-failed fetches again "
        "only the URLs that failed (see docs/data.md).",
    )
    p.add_argument("hf_root", type=Path, metavar="HF_ROOT", help="Hugging Face metadata folder")
    p.add_argument("out", type=Path, metavar="OUT", help="training-layout folder to build")
    p.add_argument("--images", type=Path, required=True, help="img2dataset output folder")
    p.add_argument(
        "--download",
        action="store_true",
        help="first run img2dataset on every URL of the metadata (needs network and "
        "img2dataset in its own virtualenv); prints the success rate and the failures by "
        "reason, and writes IMAGES/failures.csv (url, reason)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="like --download, but fetch only the URLs that no earlier run fetched (into "
        "IMAGES/retry-N/; fetched images are kept, none is fetched twice), then report",
    )
    p.add_argument("--img2dataset", type=Path, help="img2dataset executable (default: PATH)")
    p.add_argument(
        "--format",
        choices=("parquet", "webdataset"),
        default="parquet",
        help="img2dataset output format for --download (default parquet)",
    )
    p.add_argument("--processes", type=_positive, default=2, help="img2dataset processes (2)")
    p.add_argument(
        "--threads", type=_positive, default=32, help="img2dataset threads per process (32)"
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        help="seconds img2dataset waits for one image before giving up (10)",
    )
    p.add_argument(
        "--retries",
        type=_non_negative,
        default=2,
        help="img2dataset's immediate retries of a failed URL within one run (2)",
    )
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


def _register_dedup(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "dedup",
        help="find near-duplicates (perceptual hash, embeddings) and write a cleaned list",
        description="Find near-duplicates within a catalog and between products and "
        "distractors, by 64-bit perceptual hash (Hamming distance) and/or by embedding "
        "(cosine, FAISS range search). Writes groups.json, pairs.parquet, kept.txt, "
        "kept_distractors.txt, dropped.tsv and summary.json into --out (see docs/data.md).",
    )
    p.add_argument(
        "source",
        type=Path,
        nargs="?",
        metavar="SOURCE",
        help="dataset (any layout: products and distractors of --split) or catalog "
        "folder/table; omit to dedup the ids of --embeddings alone",
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (created)")
    p.add_argument("--split", help="dataset split (default: test when there is one)")
    p.add_argument(
        "--distractors", type=Path, help="a second dataset or catalog: its items are distractors"
    )
    p.add_argument("--embeddings", type=Path, help="(id, vector) parquet of the products")
    p.add_argument(
        "--distractor-embeddings", type=Path, help="(id, vector) parquet of the distractors"
    )
    p.add_argument(
        "--method",
        default=None,
        help="phash, embedding, or phash,embedding (default: phash, plus embedding when "
        "--embeddings is given)",
    )
    p.add_argument(
        "--combine",
        choices=("any", "all"),
        default="all",
        help="with both methods: a pair counts only when all agree (default), or when any finds it",
    )
    p.add_argument(
        "--max-hamming", type=int, default=6, help="pHash bits that may differ (default 6)"
    )
    p.add_argument(
        "--min-cosine", type=float, default=0.95, help="embedding similarity (default 0.95)"
    )
    p.add_argument(
        "--scope",
        choices=("all", "cross", "within"),
        default="all",
        help="which pairs count: all, cross (products vs distractors, the paper's cleaning), "
        "within (same role)",
    )
    p.set_defaults(func=run_dedup)


def _register_closeups(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "closeups",
        help="copy a training-layout dataset with its scenes cut to close-ups of the items",
        description="Write a copy of SRC whose training and validation scene images are the "
        "square close-ups of the item each product record is about, cut around the boxes of "
        "SRC/synth_outfits.parquet (referred data synth) or SRC/item_boxes.csv (URL, "
        "PRODUCT_ID, X0, Y0, X1, Y1). Train a CondViT on it, then fit its locator "
        "(referred train --task locator) on SRC: queries are then embedded as close-ups "
        "(docs/training.md, Zoom). The test split and metadata are linked, not copied.",
    )
    p.add_argument("src", type=Path, metavar="SRC", help="training-layout dataset with boxes")
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (absent or empty)")
    p.add_argument(
        "--grow",
        type=non_negative_float,
        default=None,
        help="margin on every side, as a share of the box's longer side (default 0.25)",
    )
    p.add_argument(
        "--jitter",
        type=non_negative_float,
        default=0.0,
        help="cut each training close-up around its box resized by a random factor in "
        "exp([-J, J]) and moved by up to J/2 of its side, as a locator errs (fixed per image; "
        "validation close-ups stay exact; 0 to 1, default 0)",
    )
    p.add_argument(
        "--workers", type=_positive, default=1, help="shards rewritten at a time (default 1)"
    )
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    p.set_defaults(func=run_closeups)


def run_closeups(args: argparse.Namespace) -> int:
    """``referred data closeups``."""
    from referred.cli import UserError
    from referred.data.closeups import write_closeups
    from referred.zoom.boxes import GROW

    grow = GROW if args.grow is None else args.grow
    try:
        report = write_closeups(
            args.src,
            args.out,
            grow=grow,
            jitter=args.jitter,
            overwrite=args.overwrite,
            workers=args.workers,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(report.summary())
    return 0


def run_synth(args: argparse.Namespace) -> int:
    """``referred data synth``."""
    if args.task == "cir":
        from referred.data.synth.cir import CIRSynthConfig, write_cir_dataset

        cir = CIRSynthConfig(train=args.products, size=args.size, seed=args.seed)
        print(write_cir_dataset(args.out, cir, overwrite=args.overwrite).summary())
        return 0
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
        DownloadConfig,
        PrepareConfig,
        download_images,
        find_img2dataset,
        prepare_dataset,
        wanted_urls,
    )

    config = PrepareConfig(
        hf_root=args.hf_root,
        images=args.images,
        out=args.out,
        shard_size=args.shard_size,
        dist_shard_size=args.dist_shard_size,
        verify=not args.no_verify,
    )
    if args.download or args.retry_failed:
        download = DownloadConfig(
            exe=find_img2dataset(args.img2dataset),
            output_format=args.format,
            processes=args.processes,
            threads=args.threads,
            timeout=args.timeout,
            retries=args.retries,
        )
        urls = list(wanted_urls(HFMetadataDataset(args.hf_root)))
        run = download_images(urls, args.images, args.out / ".prepare", download,
                              retry_failed=args.retry_failed)  # fmt: skip
        for line in run.lines():
            print(line, flush=True)
    report = prepare_dataset(config)
    for problem in report.stats.problems[:20]:
        print(problem)
    for line in report.summary_lines():
        print(line)
    kept = sum(c.kept for c in report.products.values())
    if not kept:
        print("no product could be kept: check --images points at the img2dataset output")
    return 0 if kept else 1


def run_dedup(args: argparse.Namespace) -> int:
    """``referred data dedup``: search, report, print the summary."""
    from referred.cli import UserError
    from referred.data.dedup import DedupConfig, dedup_files, summary

    if args.source is None and args.embeddings is None:
        raise UserError("give the items: a dataset or catalog SOURCE, or --embeddings FILE")
    if args.method is None:
        methods = ("phash",) if args.source is not None else ()
        methods += ("embedding",) if args.embeddings is not None else ()
    else:
        methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    try:
        config = DedupConfig(
            methods=methods,
            max_hamming=args.max_hamming,
            min_cosine=args.min_cosine,
            combine=args.combine,
            scope=args.scope,
        )
        result = dedup_files(
            args.out,
            config,
            source=args.source,
            split=args.split,
            distractors=args.distractors,
            embeddings=args.embeddings,
            distractor_embeddings=args.distractor_embeddings,
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise UserError(str(exc)) from None
    s = summary(result)
    items, dropped = s["items"], s["dropped"]
    print(
        f"{items['product']} products, {items['distractor']} distractors "
        f"({s['unreadable']} unreadable); methods {', '.join(config.methods)}"
    )
    print("pairs: " + ", ".join(f"{k} {v}" for k, v in s["pairs"].items()))
    print(
        f"{s['groups']} groups; dropped {dropped['product']} products, "
        f"{dropped['distractor']} distractors; seconds "
        + ", ".join(f"{k} {v:.1f}" for k, v in s["seconds"].items())
    )
    print(f"report and cleaned lists (kept.txt, kept_distractors.txt): {args.out}")
    return 0
