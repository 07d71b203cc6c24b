"""A local image server for download tests: 127.0.0.1 only, a free port, failures on purpose.

Each path is served in one :data:`MODES`: ``ok`` (the image), ``404``, ``500``, ``slow`` (waits
``slow_s`` before answering, past the client's timeout), ``truncated`` (says Content-Length of
the whole image, sends half, closes) or ``corrupt`` (a full 200 response whose bytes are no
image). Requests are counted per path; :meth:`ImageServer.heal` serves every path ``ok`` from
then on. Used as a context manager, the server stops (and wakes any slow answers) on exit.

:func:`point_metadata_at` copies Hugging Face metadata (e.g. the synthetic dataset's, URLs
``synth://…``) with its URLs pointing at the server.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

MODES = ("ok", "404", "500", "slow", "truncated", "corrupt")


class ImageServer:
    """``images``: path (``/a/b.jpg``) → bytes; ``modes``: path → one of :data:`MODES`."""

    def __init__(
        self, images: dict[str, bytes], modes: dict[str, str] | None = None, slow_s: float = 3.0
    ) -> None:
        modes = dict(modes or {})
        unknown = {m for m in modes.values() if m not in MODES} | (set(modes) - set(images))
        if unknown:
            raise ValueError(f"unknown modes or paths: {sorted(unknown)}")
        self.images, self.modes, self.slow_s = dict(images), modes, slow_s
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # a client that hung up
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def mode(self, path: str) -> str:
        with self._lock:
            return self.modes.get(path, "ok")

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1

    def heal(self) -> None:
        """Serve every path ``ok`` from now on (answers already waiting stay slow)."""
        with self._lock:
            self.modes.clear()

    def take_requests(self) -> Counter[str]:
        """The requests counted so far, per path; the count starts again from zero."""
        with self._lock:
            taken, self.requests = self.requests, Counter()
        return taken

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # http.server's backlog of 5 overflows under dozens of parallel clients on a busy machine:
    # a dropped SYN is sent again only after 1 s, which reads as a client timeout
    request_queue_size = 256


def _handler_for(server: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server.count(path)
            data, mode = server.images.get(path), server.mode(path)
            if data is None or mode == "404":
                self.send_error(404)
                return
            if mode == "500":
                self.send_error(500)
                return
            if mode == "slow" and server._stopping.wait(server.slow_s):
                return  # stopping: drop the connection unanswered
            if mode == "corrupt":
                data = bytes(b ^ 0x5A for b in data)  # same length, no image signature
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (a slow answer, too late)
                self.wfile.write(data[: len(data) // 2] if mode == "truncated" else data)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read the counts, not a log

    return Handler


def point_metadata_at(hf_synth: Path, hf: Path, base: str) -> None:
    """Copy the HF metadata folder ``hf_synth`` to ``hf``, each URL ``synth://X`` → ``base/X``."""
    for path in hf_synth.rglob("*"):
        if not path.is_file():
            continue
        dest = hf / path.relative_to(hf_synth)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".parquet":
            dest.write_bytes(path.read_bytes())
            continue
        table = pq.read_table(path)
        i = table.schema.get_field_index("URL")
        url = pc.replace_substring(table.column(i), "synth://", base.rstrip("/") + "/")
        pq.write_table(table.set_column(i, table.schema.field(i), url), dest)
