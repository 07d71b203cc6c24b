"""``referred demo``: the first thing a new user runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on a synthetic catalog",
        description="Build (or reuse) a synthetic catalog, load the demo model, and answer a "
        "few referred queries (scene + category).",
    )
    p.add_argument("--cache", default=".cache/demo", help="where the synthetic catalog is kept")
    p.add_argument("--show", type=int, default=3, help="queries to print")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from referred.demo import run_demo

    run_demo(Path(args.cache), show=max(0, args.show))
    return 0
