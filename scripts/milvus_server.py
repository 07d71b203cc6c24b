#!/usr/bin/env python
"""A real Milvus standalone server on this machine, for tests, benchmarks and trying things out.

The PyPI package ``milvus`` (2.3.5) ships the Milvus standalone binary (embedded etcd, local
storage, RocksMQ). It lives in its own virtualenv, ``.cache/milvus-server/venv``, made on first
use (its binary does not need the project's packages, and its optional client pins an old
pymilvus). The project's own pymilvus talks to it over gRPC, as to any Milvus cluster.

    python scripts/milvus_server.py --port 19530                  # serve until Ctrl+C
    python scripts/milvus_server.py --port 19530 --data-dir DIR   # keep the data there

Library (the test fixture and ``scripts/bench_milvus.py`` use it)::

    server = start_server(data_dir, port=free_port())   # blocks until Milvus answers
    ...  milvus:http://127.0.0.1:{server.port}
    server.stop()                                        # graceful, then killed after 60 s

Every component registers as 127.0.0.1 and the embedded etcd listens on 127.0.0.1 only; the
Milvus 2.3 binary itself binds its gRPC ports on all interfaces (it has no setting for that).
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "milvus-server"
PACKAGE = "milvus==2.3.5"
READY = "milvus-server-ready"

# Runs inside the server's virtualenv: start Milvus, say READY, stop it on SIGTERM / SIGINT or
# when stdin closes (the parent died), waiting for a graceful exit (the package's own ``stop``
# kills the binary after 1 s).
_SERVE = """
import signal, socket, subprocess, sys, threading
from milvus import default_server as s

def try_bind(port):  # the package's port check, but a restart may reuse a port in TIME_WAIT
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None

s.config.try_bind_port = try_bind
s.set_base_dir(sys.argv[1])
s.listen_port = int(sys.argv[2])
for part in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode",
             "dataCoord", "dataNode"):
    s.config.set(part + ".ip", "127.0.0.1")
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
signal.signal(signal.SIGINT, lambda *a: done.set())
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
try:
    s.start()
except BaseException:
    s.stop()
    raise
print(sys.argv[4], s.listen_port, flush=True)
while not done.wait(0.5) and s.server_proc.poll() is None:
    pass
proc = s.server_proc
if proc.poll() is None:
    proc.terminate()
    try:
        proc.wait(timeout=float(sys.argv[3]))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
s.stop()
"""


class ServerError(RuntimeError):
    """The Milvus server's virtualenv could not be made or the server did not start."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_venv(root: Path = CACHE, python: str = sys.executable) -> Path:
    """The Python of ``root/venv`` with the ``milvus`` package, made (pip, ~80 MB) if absent."""
    py = root / "venv" / "bin" / "python"
    stamp = root / "venv" / ".installed"
    if stamp.exists() and stamp.read_text() == PACKAGE:
        return py
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not py.exists():
            subprocess.run(
                [python, "-m", "venv", str(root / "venv")], check=True, capture_output=True
            )
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PACKAGE],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise ServerError(f"could not install {PACKAGE} into {root / 'venv'}: {detail}") from exc
    stamp.write_text(PACKAGE)
    return py


@dataclass
class MilvusServer:
    """A running server: ``uri`` to connect, ``stop()`` to end it (data stays in data_dir)."""

    port: int
    data_dir: Path
    process: subprocess.Popen = field(repr=False)
    started_in_s: float = 0.0
    root: Path = CACHE

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 90.0) -> None:
        """SIGTERM (Milvus flushes and exits), then kill if it takes more than ``timeout`` s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin:
            self.process.stdin.close()
        if self.process.stdout:
            self.process.stdout.close()

    def restart(self, timeout: float = 240.0) -> None:
        """Stop gracefully and start again on the same port and data (what survives a
        restart is what Milvus persisted)."""
        self.stop()
        fresh = start_server(self.data_dir, self.port, timeout=timeout, root=self.root)
        self.process, self.started_in_s = fresh.process, fresh.started_in_s

    def log_tail(self, lines: int = 20) -> str:
        log = self.data_dir / "logs" / "milvus-stderr.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )


def start_server(
    data_dir: Path, port: int | None = None, *, timeout: float = 240.0, root: Path = CACHE
) -> MilvusServer:
    """Start Milvus on 127.0.0.1:``port`` with its data under ``data_dir``; wait until ready.

    Raises :class:`ServerError` (with the log's tail) when it exits or is not ready in
    ``timeout`` seconds; the half-started server is stopped first.
    """
    py = ensure_venv(root)
    data_dir = Path(data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(py), "-c", _SERVE, str(data_dir), str(port), "5", READY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # a Ctrl+C in the caller's terminal does not reach it twice
    )
    server = MilvusServer(port, data_dir, proc, root=root)
    if not _wait_ready(proc, t0 + timeout):
        server.stop(timeout=10)
        raise ServerError(
            f"Milvus did not start on 127.0.0.1:{port} in {timeout:.0f} s "
            f"(exit code {proc.returncode}); log tail:\n{server.log_tail()}"
        )
    server.started_in_s = time.perf_counter() - t0
    return server


def _wait_ready(proc: subprocess.Popen, deadline: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.perf_counter() < deadline:
            if sel.select(timeout=max(0.0, min(1.0, deadline - time.perf_counter()))):
                line = proc.stdout.readline()
                if line.startswith(READY):
                    return True
                if not line:  # EOF: the runner exited
                    proc.wait()
                    return False
    return False


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=19530)
    p.add_argument("--data-dir", type=Path, default=CACHE / "data")
    args = p.parse_args(argv)
    try:
        server = start_server(args.data_dir, args.port)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Milvus ready on {server.uri} in {server.started_in_s:.1f} s "
        f"(data: {server.data_dir}); Ctrl+C stops it",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    server.stop()
    print("Milvus stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
