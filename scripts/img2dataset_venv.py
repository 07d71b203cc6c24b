#!/usr/bin/env python
"""img2dataset in its own virtualenv, ``.cache/img2dataset/venv``, made on first use.

img2dataset 1.47.0 pins pandas 2, webdataset 0.2, opencv 4, albumentations 1.4 and wandb, which
conflict with this project's own venv, so it gets a separate one (~780 MB, 2–3 min of pip). The
project never imports it: ``referred data prepare --download --img2dataset PATH`` runs it.

    python scripts/img2dataset_venv.py     # make it if needed, print the executable's path

Library (the download tests use it)::

    exe = ensure_venv()    # raises VenvError (with pip's message) when it cannot be made
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "img2dataset"
PACKAGE = "img2dataset==1.47.0"


class VenvError(RuntimeError):
    """The virtualenv could not be made (no package index, pip failed, took too long)."""


def ensure_venv(root: Path = CACHE, python: str = sys.executable, timeout: float = 600) -> Path:
    """The img2dataset executable of ``root/venv``, installed with pip if not there yet.

    Safe to call from several processes at once (a lock file serialises the install).
    """
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    exe, stamp = venv / "bin" / "img2dataset", venv / ".installed"
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == PACKAGE and exe.is_file():
            return exe
        py = venv / "bin" / "python"
        try:
            if not py.exists():
                subprocess.run(
                    [python, "-m", "venv", str(venv)], check=True, capture_output=True, text=True
                )
            subprocess.run(
                [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 PACKAGE],
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()[-3:]
            raise VenvError(
                f"could not install {PACKAGE} into {venv}: {' / '.join(detail)}"
            ) from exc
        if not exe.is_file():
            raise VenvError(f"{PACKAGE} installed into {venv} but {exe} is missing")
        stamp.write_text(PACKAGE)
        return exe


def main() -> int:
    try:
        exe = ensure_venv()
    except VenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(exe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
