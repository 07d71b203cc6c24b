"""Atomic saving of an index directory, and the manifest that validates it at load.

Save: every file is written into ``.<name>.tmp-<pid>-<token>`` beside the target, hashed and
fsynced, the manifest is written last, then the directories are swapped (target renamed to
``.<name>.old-<pid>-<token>``, temp renamed to target, old removed). A crash at any point leaves
either the previous index in place or, in the instant between the two renames, the previous
index under its ``.old`` name; ``load_index`` and the next ``save`` recover it. One writer per
directory at a time; POSIX rename semantics are assumed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from referred.index.base import PathLike
from referred.index.errors import (
    CorruptIndexError,
    IndexNotFoundError,
    MetadataError,
    TargetExistsError,
)

log = logging.getLogger(__name__)

FORMAT = "referred-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_REQUIRED = ("format", "version", "backend", "spec", "dim", "count", "files")
_rename = os.rename  # module attribute so tests can simulate a crash between the renames


def checked_info(info: Any) -> dict[str, Any]:
    """``index.info`` as a JSON-ready dict; raises MetadataError when it cannot be saved."""
    if not isinstance(info, dict):
        raise MetadataError(f"index.info must be a dict, got {type(info).__name__}")
    try:
        return json.loads(json.dumps(info))
    except (TypeError, ValueError) as exc:
        raise MetadataError(f"index.info must be JSON-serialisable: {exc}") from None


def save_atomically(
    path: PathLike, write: Callable[[Path], None], manifest: dict[str, Any]
) -> None:
    """Create directory ``path`` holding what ``write(tmp_dir)`` writes plus ``manifest.json``.

    ``manifest`` gets ``format``, ``version``, ``saved_at`` and ``files`` (bytes and sha256 of
    every file) added. An existing index at ``path`` is replaced; any other existing path is
    refused with TargetExistsError.
    """
    target = Path(path).absolute()
    is_index = (target / MANIFEST).is_file()
    if target.exists() and not is_index and (not target.is_dir() or any(target.iterdir())):
        raise TargetExistsError(f"{target} exists and is not a saved index; refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = target.parent / f".{target.name}.tmp-{token}"
    tmp.mkdir()
    try:
        write(tmp)
        files = {}
        for f in sorted(tmp.iterdir()):
            files[f.name] = {"bytes": f.stat().st_size, "sha256": _digest(f, fsync=True)}
        full = {"format": FORMAT, "version": FORMAT_VERSION, **manifest}
        full.update(saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), files=files)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(full, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, target, target.parent / f".{target.name}.old-{token}")


def _swap(tmp: Path, target: Path, old: Path) -> None:
    had_old = target.exists()
    if had_old:
        _rename(target, old)
    try:
        _rename(tmp, target)
    except BaseException:
        if had_old:
            os.rename(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def _siblings(target: Path, kind: str) -> list[Path]:
    """Leftover ``.<name>.<kind>-<pid>-<token>`` dirs of dead processes, newest first."""
    out = []
    for p in target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"):
        pid = p.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            out.append(p)
    return sorted(out, key=lambda p: p.stat().st_mtime, reverse=True)


def _recover(target: Path) -> None:
    """Put back a previous index left aside by a crashed save; remove stale temp dirs."""
    olds = [p for p in _siblings(target, "old") if (p / MANIFEST).is_file()]
    if olds and not target.exists():
        log.warning("restoring %s from %s left by an interrupted save", target, olds[0])
        os.rename(olds.pop(0), target)
    for p in olds + _siblings(target, "tmp"):
        shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _digest(path: Path, fsync: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
        if fsync:
            os.fsync(fh.fileno())
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(path: PathLike, verify: bool = False) -> tuple[Path, dict[str, Any]]:
    """Find and check a saved index; returns (its directory, its manifest).

    Checks the manifest's format and keys and that every listed file exists with its recorded
    size; ``verify=True`` also compares sha256 checksums (reads every byte). When ``path`` is
    missing but a crashed save left the previous index aside, that one is returned.
    """
    target = Path(path).absolute()
    if not target.exists():
        olds = [p for p in _siblings(target, "old") if (p / MANIFEST).is_file()]
        if not olds:
            raise IndexNotFoundError(f"no saved index at {target}")
        log.warning("%s is missing; loading %s left by an interrupted save", target, olds[0])
        target = olds[0]
    mf = target / MANIFEST
    if not mf.is_file():
        raise CorruptIndexError(
            f"{target} has no {MANIFEST}: not a saved index, or a save that did not finish"
        )
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"cannot parse {mf}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptIndexError(f"{mf} is not a {FORMAT} manifest")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise CorruptIndexError(f"{mf} lacks {missing}")
    if manifest["version"] > FORMAT_VERSION:
        raise CorruptIndexError(
            f"{target} uses format version {manifest['version']}; this referred reads up to "
            f"{FORMAT_VERSION}: upgrade referred"
        )
    for name, info in manifest["files"].items():
        f = target / name
        if not f.is_file():
            raise CorruptIndexError(f"{target} is missing {name} listed in its manifest")
        if f.stat().st_size != info["bytes"]:
            raise CorruptIndexError(
                f"{f} has {f.stat().st_size} bytes, the manifest says {info['bytes']} (truncated?)"
            )
        if verify and _digest(f) != info["sha256"]:
            raise CorruptIndexError(f"{f} does not match its sha256 in the manifest")
    return target, manifest
