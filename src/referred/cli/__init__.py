"""The ``referred`` command line: one verb per module, each a thin layer over library calls.

Every verb module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit code). Only this package parses
strings; library code takes typed values.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Verb modules, in the order ``referred --help`` lists them.
_VERBS = ("demo", "serve", "search", "index", "embed", "benchmark", "train", "data")


class UserError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referred",
        description="Referred Visual Search with CondViT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in _VERBS:
        importlib.import_module(f"referred.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f"referred {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
