"""``referred demo``: the first thing a new user runs (``make demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="serve the web demo on a synthetic catalog",
        description="Build (or reuse, under --cache) a synthetic catalog, load the demo model, "
        "index the catalog and serve the search page at http://HOST:PORT/.",
    )
    p.add_argument("--cache", default=".cache/demo", help="where the demo catalog is kept")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from referred.demo import run_demo

    run_demo(Path(args.cache), host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0
