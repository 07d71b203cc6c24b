"""``referred serve``: the HTTP API and the search page over a saved catalog index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the search API and page over a catalog index",
        description="Load the model and the index (built with `referred index build`) and serve "
        "the HTTP API (docs at /docs) and the search page at /. Every flag can also be set "
        "with a REFERRED_* environment variable (see docs/service.md); flags win.",
    )
    p.add_argument("--index", help="index directory (REFERRED_INDEX)")
    p.add_argument(
        "--model",
        help="weights file, folder or hub id (default: the one recorded "
        "in the index at build time; REFERRED_MODEL)",
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--images",
        help="folder that product image paths must lie in (default: the "
        "catalog folder recorded in the index; REFERRED_IMAGES)",
    )
    p.add_argument("--samples", help="folder of sample scenes offered on the page")
    p.add_argument("--uploads", help="where images of products added by POST /products go")
    p.add_argument(
        "--admin-token-file",
        help="file holding the bearer token that enables "
        "POST/DELETE /products (or set REFERRED_ADMIN_TOKEN)",
    )
    p.add_argument(
        "--persist",
        action="store_true",
        default=None,
        help="save the index to --index after every add/delete",
    )
    p.add_argument("--max-upload-mb", type=float, help="request body limit (default 10)")
    p.add_argument("--max-megapixels", type=float, help="image size limit (default 40)")
    p.add_argument(
        "--batching",
        choices=("micro", "threadpool"),
        help="gather concurrent searches into one forward (micro, default) or not",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, each with its own model (default 1)",
    )
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):  # -> Settings
    from referred.cli import UserError
    from referred.web.settings import MiB, Settings

    token = None
    if args.admin_token_file:
        path = Path(args.admin_token_file)
        if not path.is_file():
            raise UserError(f"admin token file not found: {path}")
        token = path.read_text().strip()
        if len(token) < 16:
            raise UserError(f"the admin token in {path} is shorter than 16 characters")
    mb = args.max_upload_mb
    mp = args.max_megapixels
    settings = Settings.from_env(
        index_dir=args.index,
        model_path=args.model,
        host=args.host,
        port=args.port,
        image_root=args.images,
        samples_dir=args.samples,
        upload_dir=args.uploads,
        admin_token=token,
        persist_writes=args.persist,
        batching=args.batching,
        max_upload_bytes=None if mb is None else int(mb * MiB),
        max_pixels=None if mp is None else int(mp * 1_000_000),
    )
    if settings.index_dir is None:
        raise UserError("give the index to serve: --index DIR (or REFERRED_INDEX)")
    if not settings.index_dir.exists():
        raise UserError(f"index directory not found: {settings.index_dir}")
    return settings


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    settings = settings_from_args(args)
    if settings.admin_token:
        os.environ["REFERRED_ADMIN_TOKEN"] = settings.admin_token  # for worker processes
    print(
        f"referred: serving {settings.index_dir} at http://{settings.host}:{settings.port}/ "
        f"(API docs at /docs); writes {'enabled' if settings.writes_enabled else 'disabled'}",
        file=sys.stderr,
        flush=True,
    )
    if args.workers > 1:
        # Each worker process imports the app factory and loads its own model and index.
        _export(settings)
        uvicorn.run(
            "referred.web.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level=settings.log_level,
        )
    else:
        from referred.web.app import create_app

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )
    return 0


def _export(settings) -> None:
    """Put the settings in the environment, where worker processes read them."""
    import os
    from dataclasses import fields

    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is not None and f.name != "admin_token":
            os.environ[f"REFERRED_{f.name.upper()}"] = str(value)
