"""Server-side chores of the milvus backend: waiting until a Milvus server serves its vector
index, checking the backend's own options, and quieting Milvus Lite's in-process server."""

from __future__ import annotations

import logging
import time
from typing import Any

from referred.index.errors import SpecError

log = logging.getLogger(__name__)


def wait_until_indexed(client: Any, collection: str, timeout: float, poll: float = 1.0) -> bool:
    """Wait until every flushed row of ``collection`` is indexed and the query nodes serve
    the indexed segments; True when done, False (logged) after ``timeout`` seconds.

    A Milvus 2.3 server builds the index of a flushed segment in the background, and its
    query nodes switch to the indexed segment only when the query coordinator next updates
    its target (up to ~30 s later); a ``refresh_load`` once the index is built asks for that
    at once. Measured on 2 vCPUs: 13–20 s for 4,000 × 32, ~60 s for 20,000 × 512.
    """
    deadline, refreshed = time.monotonic() + timeout, False
    while True:
        built, served = index_state(client, collection)
        if served:
            return True
        if built and not refreshed:
            refreshed = True
            try:
                client.refresh_load(collection)
            except Exception as exc:  # an older server: its coordinator gets there by itself
                log.debug("refresh_load of %s failed: %s", collection, exc)
            continue
        if time.monotonic() > deadline:
            log.warning("Milvus collection %s: index not served after %.0f s", collection, timeout)
            return False
        time.sleep(poll)


#: Milvus indexes no segment of fewer rows (``minSegmentNumRowsToEnableIndex``, default
#: 1024): its query nodes search those exactly.
MIN_INDEXED_ROWS = 1024


def index_state(client: Any, collection: str) -> tuple[bool, bool]:
    """(every flushed row is indexed, and the query nodes serve indexed segments of them all,
    small segments being searched exactly without an index)."""
    state = client.describe_index(collection, "vector")
    total = int(state.get("total_rows", 0) or 0)
    built = not state.get("pending_index_rows") and int(state.get("indexed_rows", 0)) >= total
    segments = client.list_loaded_segments(collection)
    loaded = sum(s.num_rows for s in segments)
    raw = [s for s in segments if not s.index_name and s.num_rows >= MIN_INDEXED_ROWS]
    return built, built and loaded >= total and not raw


def check_settings(ef_search: Any, exact_filter_rows: Any, max_k: int) -> None:
    """SpecError unless ``ef_search`` >= 1 and 0 <= ``exact_filter_rows`` < ``max_k``."""
    for name, value, low in (
        ("ef_search", ef_search, 1),
        ("exact_filter_rows", exact_filter_rows, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SpecError(f"milvus option {name} must be an int >= {low}, got {value!r}")
    if exact_filter_rows >= max_k:
        raise SpecError(
            f"milvus option exact_filter_rows must be below {max_k} (Milvus's query limit), "
            f"got {exact_filter_rows}"
        )


class _DropUnimplemented(logging.Filter):
    """Milvus Lite's in-process gRPC server logs a traceback for each RPC it does not
    implement (pymilvus probes ``AllocTimestamp`` on connect); the client copes, so drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


def quiet_lite_server() -> None:
    logger = logging.getLogger("grpc._server")
    if not any(isinstance(f, _DropUnimplemented) for f in logger.filters):
        logger.addFilter(_DropUnimplemented())
