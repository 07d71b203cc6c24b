"""Load test for a running referred service: N concurrent clients for a fixed time.

Each client loops: pick a sample scene (``GET /samples``) and a category (``GET /categories``)
at random (seeded), ``POST /search`` with ``k=10``, record the latency and the status. With
``--text-share F`` and a model that takes text, a fraction F of the requests send a free text
instead (colour × pattern × item: 600 distinct phrases, so the service's text memo both hits
and misses). With ``--writers W``, W more tasks stream catalog writes meanwhile: each loops
``POST /products`` (a sample scene as the product photo, ids ``load-w<i>-<n>`` cycling over 20,
so they are upserts after the first round) every ``--write-interval`` seconds, with the admin
token from ``$REFERRED_ADMIN_TOKEN``; the products written are deleted at the end. The test
stops itself after ``--duration`` seconds (in-flight requests get ``--timeout`` more) and
prints requests, errors, QPS and latency percentiles (searches, and writes apart);
``--json`` writes them to a file. The first ``--warmup`` seconds (default 10) run the same
load uncounted: a fresh service computes what it then remembers (each sample's trunk maps,
its close-ups). ``--fresh`` sends every search a photo the service has never seen (a sample
with faint noise, re-encoded: the client's own ~4.5 ms a request for a 256 px scene, on the
same cores), so nothing is remembered, as with new uploads.

Only loopback addresses are accepted: this never sends traffic anywhere else.

    referred demo --no-browser &                     # or: referred serve --index ... --model ...
    python scripts/load_test.py --clients 32 --duration 120
    REFERRED_ADMIN_TOKEN=... python scripts/load_test.py --clients 8 --writers 1
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import random
import socket
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx
import numpy as np


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host!r}: {exc}") from None
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise SystemExit(f"refusing to load-test {host!r}: only loopback addresses are allowed")


async def fetch_inputs(
    client: httpx.AsyncClient,
) -> tuple[list[tuple[str, bytes]], list[str], bool]:
    info = (await client.get("/categories")).json()
    cats = info["categories"]
    samples = (await client.get("/samples")).json()["samples"]
    if not samples:
        raise SystemExit("the service lists no sample scenes (GET /samples); nothing to send")
    images = []
    for s in samples:
        r = await client.get(s["image_url"])
        r.raise_for_status()
        images.append((s["name"], r.content))
    return images, cats, bool(info.get("accepts_text"))


COLOURS = ("red", "blue", "green", "black", "white", "yellow", "pink", "grey", "orange", "navy")
PATTERNS = ("striped", "plain", "dotted", "checked", "two-tone", "floral")
ITEMS = ("scarf", "bag", "cap", "shoes", "skirt", "jacket", "shirt", "belt", "dress", "gloves")


def text_query(rng: random.Random) -> str:
    return f"a {rng.choice(COLOURS)} {rng.choice(PATTERNS)} {rng.choice(ITEMS)}"


def fresh_photo(data: bytes, seed: int) -> bytes:
    """``data`` (an encoded photo) with faint noise drawn from ``seed`` (±2 levels a pixel),
    re-encoded as JPEG: a photo the service has never seen, so nothing it computed for the
    sample (its trunk maps, its close-ups) is reused."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-2, 3, rgb.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb + noise, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=95)
    return out.getvalue()


async def worker(
    client: httpx.AsyncClient,
    rng: random.Random,
    images: list[tuple[str, bytes]],
    cats: list[str],
    k: int,
    deadline: float,
    tally: Tally,
    text_share: float = 0.0,
    fresh: bool = False,
    counted_from: float = 0.0,
) -> None:
    while time.monotonic() < deadline:
        name, data = rng.choice(images)
        if fresh:
            data = fresh_photo(data, rng.getrandbits(63))
        started = time.monotonic()
        use_text = rng.random() < text_share
        condition = {"text": text_query(rng)} if use_text else {"category": rng.choice(cats)}
        start = time.perf_counter()
        try:
            r = await client.post(
                "/search",
                files={"image": (name, data, "image/jpeg")},
                data={**condition, "k": str(k)},
            )
        except httpx.HTTPError as exc:
            tally.error(type(exc).__name__)
            continue
        elapsed = time.perf_counter() - start
        if started < counted_from:  # sent while warming up: not counted
            continue
        if r.status_code != 200:
            tally.error(f"HTTP {r.status_code}")
            continue
        tally.latencies.append(elapsed)


WRITE_IDS = 20  # ids per writer, cycled: after the first round every write is an upsert


async def writer(
    client: httpx.AsyncClient,
    index: int,
    images: list[tuple[str, bytes]],
    cats: list[str],
    interval: float,
    deadline: float,
    tally: Tally,
    written: set[str],
) -> None:
    n = 0
    while time.monotonic() < deadline:
        name, data = images[(index + n) % len(images)]
        product_id = f"load-w{index}-{n % WRITE_IDS}"
        start = time.perf_counter()
        try:
            r = await client.post(
                "/products",
                files={"image": (name, data, "image/jpeg")},
                data={"id": product_id, "category": cats[n % len(cats)], "title": "load test"},
            )
        except httpx.HTTPError as exc:
            tally.error(type(exc).__name__)
        else:
            if r.status_code == 201:
                tally.latencies.append(time.perf_counter() - start)
                written.add(product_id)
            else:
                tally.error(f"HTTP {r.status_code}")
        n += 1
        await asyncio.sleep(interval)


def figures(tally: Tally, wall: float) -> dict:
    lat = np.array(tally.latencies) * 1000.0
    pct = (lambda q: round(float(np.percentile(lat, q)), 1)) if len(lat) else (lambda q: None)
    return {
        "requests": len(lat) + sum(tally.errors.values()),
        "ok": len(lat),
        "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors,
        "qps": round(len(lat) / wall, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": round(float(lat.max()), 1) if len(lat) else None,
    }


async def run(args: argparse.Namespace) -> dict:
    connections = args.clients + args.writers
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    token = os.environ.get("REFERRED_ADMIN_TOKEN", "")
    if args.writers and not token:
        raise SystemExit("--writers needs the service's admin token in $REFERRED_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        base_url=args.url, timeout=args.timeout, limits=limits, headers=headers
    ) as client:
        images, cats, accepts_text = await fetch_inputs(client)
        if args.text_share and not accepts_text:
            raise SystemExit("--text-share: this service's model takes no free text")
        tally, writes, written = Tally(), Tally(), set()
        warm_until = time.monotonic() + args.warmup  # the same load, not counted
        deadline = warm_until + args.duration
        tasks = [
            worker(
                client,
                random.Random(args.seed + i),
                images,
                cats,
                args.k,
                deadline,
                tally,
                args.text_share,
                args.fresh,
                warm_until,
            )
            for i in range(args.clients)
        ]
        tasks += [
            writer(client, i, images, cats, args.write_interval, deadline, writes, written)
            for i in range(args.writers)
        ]
        limit = args.warmup + args.duration + args.timeout + 5
        await asyncio.wait_for(asyncio.gather(*tasks), limit)
        wall = time.monotonic() - warm_until
        for product_id in sorted(written):  # leave the catalog as it was
            await client.delete(f"/products/{quote(product_id, safe='')}")
    report = {
        "url": args.url,
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "k": args.k,
        "text_share": args.text_share,
        "fresh_photos": args.fresh,
        "warmup_s": args.warmup,
        **figures(tally, wall),
    }
    if args.writers:
        report["writers"] = args.writers
        report["write_interval_s"] = args.write_interval
        report["writes"] = figures(writes, wall)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=120.0, help="seconds")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--text-share", type=float, default=0.0, help="fraction of requests with free text"
    )
    p.add_argument("--writers", type=int, default=0, help="tasks streaming POST /products")
    p.add_argument(
        "--write-interval", type=float, default=0.1, help="seconds between one writer's writes"
    )
    p.add_argument(
        "--warmup", type=float, default=10.0, help="seconds of the same load first, not counted"
    )
    p.add_argument("--no-warmup", dest="warmup", action="store_const", const=0.0)
    p.add_argument(
        "--fresh",
        action="store_true",
        help="send each search a photo never seen (a sample with faint noise), as new uploads",
    )
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.writers < 0 or args.write_interval < 0:
        p.error("--clients must be >= 1, --duration > 0, --writers and --write-interval >= 0")
    if args.warmup < 0:
        p.error("--warmup must be >= 0 seconds")
    if not 0.0 <= args.text_share <= 1.0:
        p.error("--text-share must be between 0 and 1")
    check_loopback(args.url)
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    write_errors = report.get("writes", {}).get("errors", 0)
    return 0 if report["errors"] == 0 and write_errors == 0 and report["ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
