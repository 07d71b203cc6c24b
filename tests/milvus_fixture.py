"""``milvus_server``: one real Milvus standalone server for the whole test session.

Started on first use (10–50 s; the first run on a machine also makes its virtualenv under
``.cache/milvus-server``, ~30 s of pip) on a free 127.0.0.1 port with its data in a temporary
folder, and stopped when the session ends, whether the tests passed or not. Tests that need
it skip, saying why, when pymilvus is not installed or the server's virtualenv cannot be
made (no package index); a server that is installed but fails to start is an error.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
_names = itertools.count()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """The running server (``.uri``, ``.restart()``; see ``scripts/milvus_server.py``)."""
    pytest.importorskip("pymilvus", reason="the Milvus tests need pymilvus: referred[milvus]")
    sys.path.insert(0, str(SCRIPTS))
    try:
        from milvus_server import ServerError, ensure_venv, start_server
    finally:
        sys.path.remove(str(SCRIPTS))
    try:
        ensure_venv()
    except ServerError as exc:
        pytest.skip(f"no Milvus server to test against: {exc}")
    server = start_server(tmp_path_factory.mktemp("milvus-data"))
    try:
        yield server
    finally:
        server.stop()


def new_collection_name(prefix: str = "t") -> str:
    """A collection name not used before in this session."""
    return f"{prefix}_{next(_names)}"
