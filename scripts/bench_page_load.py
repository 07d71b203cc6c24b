"""The demo page under load, this checkout against a baseline checkout, in alternating rounds.

Each round starts ``referred demo`` from each checkout in turn (the same virtualenv, the same
demo cache; ``--plain-http NAME`` hides uvloop and httptools from that one, as its own extras
did not install them), waits for ``/healthz``, runs ``scripts/load_test.py`` twice — the sample
scenes as the page sends them (warm-up uncounted), then ``--fresh`` (photos never seen) — and
stops it. Prints one JSON row per run and the median of each figure per checkout.

    git worktree add /tmp/base <commit>
    python scripts/bench_page_load.py --baseline /tmp/base --plain-http baseline --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCK = 'raise ImportError("hidden by bench_page_load.py --plain-http")\n'


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the demo exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}/healthz in {timeout:.0f} s")


def load(url: str, args: argparse.Namespace, fresh: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(HERE / "load_test.py"), "--url", url, "--clients",
               str(args.clients), "--duration", str(args.duration), "--json", out.name]  # fmt: skip
        subprocess.run(cmd + (["--fresh"] if fresh else []), check=True, capture_output=True)
        return json.loads(Path(out.name).read_text())


def run_one(name: str, src: Path, args: argparse.Namespace, hidden: Path) -> list[dict]:
    env = dict(os.environ)
    paths = ([str(hidden)] if name in args.plain_http else []) + [str(src)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    url = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, "-m", "referred", "demo", "--cache", str(args.cache),
           "--port", str(args.port), "--no-browser"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_healthy(url, proc)
        rows = []
        for fresh in (False, True):
            figures = load(url, args, fresh)
            keep = ("qps", "p50_ms", "p90_ms", "p99_ms", "errors")
            rows.append({"checkout": name, "fresh": fresh, "ready_s": round(ready, 1),
                         **{k: figures[k] for k in keep}})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another checkout (its root)")
    p.add_argument("--plain-http", action="append", default=[], choices=("baseline", "this"),
                   help="hide uvloop and httptools from this checkout's server")  # fmt: skip
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--port", type=int, default=8031)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "referred-bench")
    args = p.parse_args(argv)
    checkouts = {"baseline": args.baseline.resolve() / "src", "this": HERE.parent / "src"}
    rows = []
    with tempfile.TemporaryDirectory() as hidden:
        for module in ("uvloop", "httptools"):
            Path(hidden, f"{module}.py").write_text(BLOCK)
        for _ in range(args.rounds):
            for name, src in checkouts.items():
                rows += run_one(name, src, args, Path(hidden))
    summary = {}
    for name in checkouts:
        for fresh in (False, True):
            mine = [r for r in rows if r["checkout"] == name and r["fresh"] == fresh]
            key = f"{name}{' fresh' if fresh else ''}"
            summary[key] = {k: statistics.median(r[k] for r in mine)
                            for k in ("qps", "p50_ms", "p90_ms", "p99_ms")}  # fmt: skip
    print(json.dumps({"median of rounds": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
