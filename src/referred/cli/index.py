"""``referred index``: build a searchable catalog index (``build``) and describe one (``info``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any


def quiet_backends(text_encoder: bool = False) -> None:
    """Keep faiss's loader and Milvus Lite's server chatter out of the CLI's INFO output;
    with ``text_encoder``, the sentence encoder's loading line and weight-loading bar too."""
    names = ["faiss.loader", "milvus_lite"]
    if text_encoder:
        names += ["sentence_transformers", "transformers"]
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build or describe a catalog index",
        description="Build a searchable index of a catalog, or describe a built one.",
    )
    verbs = p.add_subparsers(dest="index_verb", metavar="ACTION", required=True)
    b = verbs.add_parser(
        "build",
        help="embed a catalog and save a searchable index",
        description="Embed every product image unconditioned, store its metadata (id, category, "
        "title, image, extra columns) and save the index atomically in OUT. Embeddings go to "
        "OUT.work/ (or --work-dir), so a re-run resumes; unreadable images are skipped and "
        "listed. For an approximate spec the recall@10 against exact search is printed.",
    )
    b.add_argument("--model", required=True, help="weights file, folder or hub id")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--images", help="a folder of product images (category = parent folder)")
    src.add_argument("--catalog", help="a .parquet/.csv catalog (id, image, category, title, …)")
    b.add_argument(
        "--embeddings",
        help="an (id, vector) parquet to index instead of embedding "
        "(with --catalog: metadata from the catalog)",
    )
    b.add_argument("--out", required=True, help="index directory to write")
    b.add_argument(
        "--spec",
        default="flat",
        help="flat (exact), faiss:HNSW32, faiss:IVF4096,SQ8, "
        "milvus:./catalog.db, milvus:http://host:19530 …, or auto: chosen for the catalog's "
        "size and --memory-budget, then tuned to --target-recall (default 0.95) (default: flat)",
    )
    b.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="with --spec auto: the most the served index may keep in memory, e.g. 1.2GB "
        "(float vectors of lossy indexes stay on disk, memory-mapped)",
    )
    b.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="index option, e.g. ef_search=64, rerank=100, collection=shop",
    )
    b.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="embed in this process, or as a Ray Data job",
    )
    b.add_argument("--ray-address", help="Ray cluster address (default: a local Ray, 2 CPUs)")
    b.add_argument("--workers", type=int, help="Ray model actors (default: the cluster's CPUs)")
    b.add_argument("--work-dir", help="where embeddings are kept (default: OUT.work)")
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    b.add_argument(
        "--recall-queries",
        type=int,
        default=1000,
        help="catalog products used to measure recall@10 (0: skip)",
    )
    b.add_argument(
        "--target-recall",
        type=float,
        metavar="R",
        help="approximate faiss specs: raise ef_search (HNSW) or nprobe (IVF) until recall@10 "
        "against exact search reaches R (e.g. 0.95); saved with the index, curve printed",
    )
    b.add_argument(
        "--dedup",
        nargs="?",
        const="auto",
        metavar="KEPT_LIST",
        help="leave near-duplicates out: alone, by perceptual hash and embedding together "
        "(pHash <= 6 bits and cosine >= 0.95; report in the work dir's dedup/); with the "
        "kept.txt of referred data dedup, index only those ids",
    )
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=run_build)
    i = verbs.add_parser("info", help="describe a built index")
    i.add_argument("dir", help="index directory")
    i.add_argument("--json", action="store_true", help="print the manifest as JSON")
    i.set_defaults(func=run_info)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["ef_search=64", "collection=shop"]`` → ``{"ef_search": 64, "collection": "shop"}``."""
    from referred.cli import UserError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def run_build(args: argparse.Namespace) -> int:
    import torch

    from referred.catalog.build import build_catalog_index
    from referred.cli import UserError
    from referred.model import load_model

    if not (args.images or args.catalog or args.embeddings):
        raise UserError("give the catalog: --images DIR, --catalog FILE or --embeddings FILE")
    if args.images and not Path(args.images).is_dir():
        raise UserError(f"--images must be a folder of images, got {args.images}")
    if args.catalog and not Path(args.catalog).is_file():
        raise UserError(f"--catalog must be a .parquet or .csv file, got {args.catalog}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.ray_address and args.engine != "ray":
        raise UserError("--ray-address needs --engine ray")
    options = parse_options(args.option)
    budget = _memory_budget(args)
    dedup = _dedup(args)
    quiet_backends()
    torch.set_num_threads(max(1, args.threads))
    model = load_model(args.model)
    ref = str(Path(args.model).absolute()) if Path(args.model).exists() else args.model
    try:
        report = build_catalog_index(
            model,
            args.out,
            source=args.images or args.catalog,
            embeddings=args.embeddings,
            spec=args.spec,
            index_options=options,
            engine=args.engine,
            ray_address=args.ray_address,
            workers=args.workers,
            work_dir=args.work_dir,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            model_ref=ref,
            recall_queries=args.recall_queries,
            target_recall=args.target_recall,
            dedup=dedup,
            memory_budget=budget,
        )
    except ImportError as exc:
        raise UserError(str(exc)) from None
    if not args.embeddings:
        print(
            f"embedded {report.embedded + report.already_done} images ({report.embedded} new, "
            f"{report.already_done} already done) in {report.embed_seconds:.1f} s, "
            f"{len(report.failures)} skipped; embeddings: {report.embeddings}"
        )
    _print_failures(report.failures, report.embeddings)
    print(
        f"index {report.spec}: {report.count} products, {model.config.output_dim}-d, built in "
        f"{report.index_seconds:.1f} s → {report.index_dir}"
    )
    if report.auto is not None:
        print(f"spec auto → {report.spec}: {report.auto}")
    if report.dedup is not None:
        _print_dedup(report.dedup)
    if report.tuning is not None:
        _print_tuning(report.tuning)
    if report.recall_at_10 is not None:
        print(
            f"recall@10 of {report.spec} against exact search: {report.recall_at_10:.3f} "
            f"({report.recall_queries} catalog products as queries, each one's own product "
            "excluded)"
        )
    return 0


def _memory_budget(args: argparse.Namespace) -> int | None:
    """``--memory-budget`` in bytes (only with ``--spec auto``), checked before work."""
    from referred.cli import UserError

    if args.memory_budget is None:
        return None
    if args.spec.strip().lower() != "auto":
        raise UserError("--memory-budget goes with --spec auto (it chooses the spec to fit)")
    from referred.index.auto import parse_size

    try:
        return parse_size(args.memory_budget)
    except ValueError as exc:
        raise UserError(f"--memory-budget: {exc}") from None


def _dedup(args: argparse.Namespace) -> Any:
    """``--dedup``: a DedupConfig (no value) or the kept list's path, checked before work."""
    from referred.cli import UserError

    if args.dedup is None:
        return None
    if args.dedup != "auto":
        if not Path(args.dedup).is_file():
            raise UserError(f"--dedup takes the kept.txt of referred data dedup, got {args.dedup}")
        return Path(args.dedup)
    from referred.data.dedup import DedupConfig

    images = bool(args.images or args.catalog)
    return DedupConfig(methods=("phash", "embedding") if images else ("embedding",))


def _print_dedup(info: dict[str, Any]) -> None:
    if "kept_list" in info:
        print(f"dedup: {info['dropped']} products not in {info['kept_list']} left out")
        return
    cfg = info["config"]
    print(
        f"dedup ({' and '.join(cfg['methods'])}): {info['dropped']['product']} near-duplicates "
        f"left out, {info['groups']} groups; report: {info['report']}"
    )


def _print_tuning(t: Any) -> None:
    print(f"tuning {t.knob} to recall@{t.k} >= {t.target:g} ({t.queries} queries):")
    print(f"  {t.knob:>9}  recall@{t.k}  ms/query")
    for p in t.curve:
        print(f"  {p.value:>9}  {p.recall:9.3f}  {p.ms_per_query:8.2f}")
    if t.reached:
        print(f"chosen: {t.knob}={t.value} (saved with the index)")
    else:
        print(
            f"target not reached: {t.knob}={t.value} (the last tried) reaches "
            f"{t.curve[-1].recall:.3f}; try another spec (more HNSW links, a finer IVF, "
            "rerank=K) or a lower target",
            file=sys.stderr,
        )


def _print_failures(failures: list[tuple[str, str]], embeddings: Path) -> None:
    if not failures:
        return
    print(f"skipped {len(failures)} images:", file=sys.stderr)
    for item_id, reason in failures[:50]:
        print(f"  {item_id}: {reason}", file=sys.stderr)
    if len(failures) > 50:
        print(f"  … and {len(failures) - 50} more", file=sys.stderr)
    print(f"full list: {embeddings}.failures.tsv", file=sys.stderr)


def run_info(args: argparse.Namespace) -> int:
    from referred.index.storage import read_manifest

    directory, manifest = read_manifest(args.dir)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    info = manifest.get("info") or {}
    model = info.get("model") or {}
    lines = [
        f"index:     {directory}",
        f"spec:      {manifest['spec']} ({manifest['count']} products, {manifest['dim']}-d)",
        f"model:     {model.get('path') or model.get('name') or 'not recorded'}"
        + (f" ({model.get('conditioning')}, fingerprint {model['fingerprint']})" if model else ""),
        f"source:    {info.get('source') or info.get('embeddings') or 'not recorded'}",
        f"built at:  {info.get('built_at') or manifest.get('saved_at')}",
    ]
    if info.get("recall_at_10") is not None:
        lines.append(
            f"recall@10: {info['recall_at_10']:.3f} against exact "
            f"({info.get('recall_queries')} catalog queries)"
        )
    print("\n".join(lines))
    return 0
