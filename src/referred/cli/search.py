"""``referred search``: query a built index with a photo (and a category or a text)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find the product a photo shows",
        description="Search a catalog index built by `referred index build`: IMAGE with "
        "--category or --text (neither: the image alone), every category at once with "
        "--shop-the-look, or products like a catalog product with --like ID.",
    )
    p.add_argument(
        "image",
        nargs="*",
        help="query photo (not needed with --like); several photos of the same item are "
        "searched together (their queries averaged; shop-the-look takes one)",
    )
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("--model", help="weights (default: the model recorded in the index)")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--category", help="the item the shopper means, e.g. Bags")
    cond.add_argument("--text", help="the item the shopper means, in words (text models)")
    p.add_argument("-k", type=int, default=10, help="results (default 10)")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"category": "Bags"}\'')
    p.add_argument("--shop-the-look", action="store_true", help="search every category")
    p.add_argument("--categories", help="with --shop-the-look: comma-separated categories")
    p.add_argument(
        "--box",
        metavar="X0,Y0,X1,Y1",
        help="search only this region of the photo: fractions of its width and height when all "
        "four are in [0, 1], else pixels (e.g. 0.2,0.4,0.6,0.9)",
    )
    fb = p.add_argument_group("feedback (comma-separated product ids or category names)")
    fb.add_argument("--positive", metavar="IDS", help="marked good: results move towards them")
    fb.add_argument("--negative", metavar="IDS", help="marked bad: results move away from them")
    fb.add_argument("--exclude", metavar="IDS", help="products never to return")
    fb.add_argument("--exclude-categories", metavar="NAMES", help="categories never to return")
    fb.add_argument(
        "--exclude-texts",
        metavar="WORDS",
        help="comma-separated words or phrases a result's title/caption must not name "
        '("not the black one": black)',
    )
    p.add_argument("--like", metavar="PRODUCT_ID", help="products like this catalog product")
    p.add_argument(
        "--modify",
        metavar="TEXT",
        help="this, but changed: 'in red', 'same but striped', 'longer' (composes the query "
        "item, IMAGE or --like, with the model's Combiner; docs/cir.md)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> dict[str, Any] | None:
    from referred.cli import UserError
    from referred.search.searcher import MAX_QUERY_IMAGES

    if args.like is not None:
        if args.image or args.category or args.text or args.shop_the_look or args.box:
            raise UserError("--like takes no IMAGE, --category, --text, --box or --shop-the-look")
    elif not args.image:
        raise UserError("give a query IMAGE (or --like PRODUCT_ID)")
    args.photos, args.image = list(args.image), (args.image[0] if args.image else None)
    if len(args.photos) > 1 and args.shop_the_look:
        raise UserError("--shop-the-look takes one photo")
    if len(args.photos) > MAX_QUERY_IMAGES:
        raise UserError(f"at most {MAX_QUERY_IMAGES} photos of the item, got {len(args.photos)}")
    if args.modify is not None and args.shop_the_look:
        raise UserError("--modify changes one item: drop --shop-the-look")
    feedback = (
        args.positive,
        args.negative,
        args.exclude,
        args.exclude_categories,
        args.exclude_texts,
    )
    if any(feedback) and ((args.like is not None and args.modify is None) or args.shop_the_look):
        raise UserError(
            "--positive, --negative, --exclude, --exclude-categories and --exclude-texts "
            "refine one search: "
            "drop --like / --shop-the-look"
        )
    if args.shop_the_look and (args.category or args.text):
        raise UserError("--shop-the-look searches every category: drop --category / --text")
    if args.categories and not args.shop_the_look:
        raise UserError("--categories goes with --shop-the-look")
    if args.box is not None:
        from referred.region import BoxError, parse_box

        try:
            args.box = parse_box(args.box)
        except BoxError as exc:
            raise UserError(f"--box: {exc}") from None
    if args.filter is None:
        return None
    try:
        flt = json.loads(args.filter)
    except ValueError as exc:
        raise UserError(f"--filter is not valid JSON ({exc}): {args.filter}") from None
    if not isinstance(flt, dict):
        raise UserError(
            f'--filter must be a JSON object such as {{"category": "Bags"}}, got {flt!r}'
        )
    return flt


def run(args: argparse.Namespace) -> int:
    import torch

    from referred.cli import UserError
    from referred.cli.index import quiet_backends

    flt = _check(args)
    quiet_backends(text_encoder=not args.verbose)  # stdout: results only; stderr: errors
    torch.set_num_threads(max(1, args.threads))
    try:
        searcher = _open(args)
        if args.like is not None and args.modify is None:
            results: Any = searcher.more_like_this(args.like, k=args.k, filter=flt)
        elif args.shop_the_look:
            cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
            results = searcher.shop_the_look(
                args.image, categories=cats, k=args.k, filter=flt, box=args.box
            )
        else:
            results = searcher.search(
                args.photos if len(args.photos) > 1 else args.image,
                category=args.category,
                text=args.text,
                k=args.k,
                filter=flt,
                box=args.box,
                positive_ids=_names(args.positive),
                negative_ids=_names(args.negative),
                exclude_ids=_names(args.exclude),
                exclude_categories=_names(args.exclude_categories),
                exclude_texts=_names(args.exclude_texts),
                modify=args.modify,
                like=args.like,
            )
        presence = _presence(searcher, args, results)
    except (KeyError, ImportError) as exc:  # unknown product / field; missing optional deps
        msg = exc.args[0] if type(exc) is KeyError else str(exc)
        raise UserError(str(msg)) from None
    if args.json:
        print(json.dumps(_as_json(results), indent=2, default=str))
    elif isinstance(results, dict):
        for category, hits in results.items():
            p = (presence or {}).get(category)
            note = "" if p is None else f" ({'found' if p.present else 'not found'} in the photo, "
            print(f"## {category}" + (note and note + f"presence {p.probability:.2f})"))
            print(table(hits))
            print()
    else:
        if presence is not None:  # a presence head answered for the asked item
            what = args.category or f"“{args.text}”"
            print(
                f"# {what}: in the photo (presence {presence.probability:.2f})"
                if presence.present
                else f"# no {what} found in this photo (presence {presence.probability:.2f}): "
                "the closest products below"
            )
        print(table(results))
    return 0


def _presence(searcher: Any, args: argparse.Namespace, results: Any) -> Any:
    """What the model's presence head says about the asked item(s), or None (no head, no
    photo or nothing asked)."""
    if not searcher.has_presence or args.image is None:
        return None
    if isinstance(results, dict):
        return searcher.presence_all(args.image, categories=list(results), box=args.box)
    if args.category is None and args.text is None:
        return None
    return searcher.presence(args.image, category=args.category, text=args.text, box=args.box)


def _names(value: str | None) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else []


def _open(args: argparse.Namespace) -> Any:
    from referred.cli import UserError
    from referred.index import load_index
    from referred.model import load_model
    from referred.search.searcher import Searcher

    index = load_index(args.index)
    path = args.model or ((index.info or {}).get("model") or {}).get("path")
    if not path:
        raise UserError(f"{args.index} records no model; pass --model")
    return Searcher(load_model(path), index)


def _as_json(results: Any) -> Any:
    if isinstance(results, dict):
        return {c: _as_json(hits) for c, hits in results.items()}
    return [
        {
            "rank": r,
            "id": h.id,
            "score": round(h.score, 6),
            "weak": bool(getattr(h, "weak", False)),
            "metadata": h.metadata,
        }
        for r, h in enumerate(results, 1)
    ]


def table(hits: list[Any]) -> str:
    """rank, id, score, category, title as an aligned text table; a weak result (probably not
    the item asked for, :attr:`referred.search.Hit.weak`) has "(weak match)" after its title."""
    if not hits:
        return "(no results)"
    rows = [("rank", "id", "score", "category", "title")]
    for r, h in enumerate(hits, 1):
        meta = h.metadata
        title = str(meta.get("title") or "")
        title = title if len(title) <= 60 else title[:59] + "…"
        if getattr(h, "weak", False):
            title = f"{title} (weak match)".strip()
        rows.append((str(r), h.id, f"{h.score:.4f}", str(meta.get("category") or ""), title))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].rjust(widths[0]), *(v.ljust(w) for v, w in zip(row[1:], widths[1:]))]
        cells[2] = row[2].rjust(widths[2])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
