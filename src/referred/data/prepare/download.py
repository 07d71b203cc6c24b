"""Drive img2dataset (an optional tool, installed in its own virtualenv) to fetch the images.

img2dataset pins old versions of pandas, webdataset and opencv that conflict with this
package, so it is never imported: it runs as a separate program found on ``PATH`` or given
by path. Downloading needs network access; many LAION URLs are dead, so expect failures.

:func:`download_images` runs it on the URLs the metadata wants (the first run writes into the
images folder) or, with ``retry_failed``, on only the URLs that no earlier run fetched (into
``retry-{n}/``), then reads its outputs back (:mod:`referred.data.prepare.outcomes`): the
success rate, the failures by reason, and ``failures.csv`` (url, reason) in the images folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from referred.data.files import atomic_output, url_keys
from referred.data.prepare.outcomes import (
    FAILURES_FILE,
    DownloadReport,
    RunStats,
    next_retry_folder,
    read_outcomes,
    read_run_stats,
    run_folders,
)

INSTALL_HOWTO = (
    "install it in a separate virtualenv, e.g. `python -m venv ~/.venvs/img2dataset && "
    "~/.venvs/img2dataset/bin/pip install img2dataset`, then pass --img2dataset "
    "~/.venvs/img2dataset/bin/img2dataset (in a checkout of this project, "
    "`python scripts/img2dataset_venv.py` makes one and prints that path)"
)
INSTALL_HINT = "img2dataset is not installed (not found on PATH); " + INSTALL_HOWTO

# img2dataset's environment: no update check (albumentations asks PyPI at import), no wandb.
_QUIET_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}


def find_img2dataset(explicit: Path | None = None) -> Path:
    """The img2dataset executable: ``explicit`` if given, else the one on ``PATH``."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise FileNotFoundError(
                f"img2dataset executable not found: {explicit}; {INSTALL_HOWTO}"
            )
        return Path(explicit)
    found = shutil.which("img2dataset")
    if found is None:
        raise ValueError(INSTALL_HINT)
    return Path(found)


def write_url_list(urls: list[str], path: Path) -> Path:
    """Write the distinct ``urls`` (sorted) as a one-column parquet file for img2dataset."""
    table = pa.table({"url": pa.array(sorted(set(urls)), pa.string())})
    with atomic_output(path, keep_identical=True) as tmp:
        pq.write_table(table, tmp)
    return path


def img2dataset_command(
    exe: Path,
    url_list: Path,
    images: Path,
    *,
    output_format: str = "parquet",
    processes: int = 2,
    threads: int = 32,
    timeout: float = 10,
    retries: int = 2,
) -> list[str]:
    """The img2dataset command line: originals kept (no resize), JPEG, resumable."""
    if output_format not in ("parquet", "webdataset"):
        raise ValueError(f"output format {output_format!r}; expected parquet or webdataset")
    if timeout <= 0 or retries < 0:
        raise ValueError(f"timeout must be > 0 and retries >= 0, got {timeout} and {retries}")
    return [
        str(exe),
        "--url_list", str(url_list),
        "--input_format", "parquet",
        "--url_col", "url",
        "--output_format", output_format,
        "--output_folder", str(images),
        "--processes_count", str(processes),
        "--thread_count", str(threads),
        "--resize_mode", "no",
        "--encode_format", "jpg",
        "--timeout", f"{timeout:g}",
        "--retries", str(retries),
        "--incremental_mode", "incremental",
        "--enable_wandb", "False",
    ]  # fmt: skip


#: Wall-clock limit of one img2dataset run in seconds (None: none); tests set one.
RUN_LIMIT_S: float | None = None


def run_img2dataset(command: list[str], limit_s: float | None = None) -> None:
    """Run img2dataset; a non-zero exit raises ``ValueError`` with its code.

    Past ``limit_s`` (default :data:`RUN_LIMIT_S`) seconds, it and its worker processes are
    killed and ``ValueError`` says so.
    """
    limit_s = RUN_LIMIT_S if limit_s is None else limit_s
    env = {**os.environ, **_QUIET_ENV}
    with subprocess.Popen(command, env=env, start_new_session=True) as proc:
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc, signal.SIGKILL)
            raise ValueError(f"img2dataset did not finish within {limit_s:g} s; killed") from None
        except BaseException:  # Ctrl+C: its workers are in their own session, stop them too
            _stop_group(proc, signal.SIGINT)
            raise
    if code != 0:
        raise ValueError(f"img2dataset exited with code {code}: {' '.join(command)}")


def _stop_group(proc: subprocess.Popen, sig: int, grace_s: float = 10.0) -> None:
    for s in (sig, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, s)
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class DownloadConfig:
    """How to run img2dataset: the executable and its main settings (see its ``--help``)."""

    exe: Path
    output_format: str = "parquet"
    processes: int = 2
    threads: int = 32
    timeout: float = 10
    retries: int = 2


@dataclass
class DownloadRun:
    """One img2dataset run (``folder`` None when a retry found nothing to fetch) and the
    report over all runs after it."""

    folder: Path | None
    requested: int
    seconds: float
    stats: RunStats
    report: DownloadReport
    failures_file: Path

    def lines(self, root: Path | None = None) -> list[str]:
        """What happened in this run, then the report over all runs."""
        if self.folder is None:
            head = ["nothing to retry: no URL failed in the earlier runs; img2dataset not run"]
        else:
            s = self.stats
            rate = s.count / self.seconds if self.seconds > 0 else 0.0
            head = [
                f"img2dataset into {self.folder}: {self.requested} URLs in {self.seconds:.1f} s "
                f"({rate:.0f} URLs/s, {s.duration:.1f} s of it fetching): {s.successes} fetched, "
                f"{s.failed_to_download} failed to download, {s.failed_to_resize} not decodable"
            ]
        return head + self.report.lines(self.failures_file, root)


def _say(line: str) -> None:
    print(line, flush=True)  # before img2dataset's own output, which is not buffered here


def download_images(
    urls: list[str],
    images: Path,
    lists: Path,
    config: DownloadConfig,
    *,
    retry_failed: bool = False,
    echo: Callable[[str], None] = _say,
) -> DownloadRun:
    """Fetch ``urls`` into ``images`` with img2dataset, or, with ``retry_failed``, only those
    that no earlier run fetched (into the next ``images/retry-{n}``); report and write
    ``images/failures.csv``. ``lists``: where the URL lists for img2dataset are written.

    A URL fetched by any run is never requested again by a retry.
    """
    images, lists = Path(images), Path(lists)
    wanted = sorted(set(urls))
    keys = np.sort(url_keys(wanted))
    failures_file = images / FAILURES_FILE
    if retry_failed:
        if not run_folders(images):
            raise ValueError(
                f"nothing to retry: no earlier img2dataset output under {images}; "
                "run with --download first"
            )
        before = read_outcomes(images).report(keys)
        if before.failed == 0:
            before.write_failures(failures_file)
            return DownloadRun(None, 0, 0.0, RunStats(), before, failures_file)
        folder = next_retry_folder(images)
        todo = before.failed_urls.to_pylist()
        url_list = write_url_list(todo, lists / f"{folder.name}.parquet")
    else:
        folder, todo = images, wanted
        url_list = write_url_list(todo, lists / "urls.parquet")
    command = img2dataset_command(
        config.exe,
        url_list,
        folder,
        output_format=config.output_format,
        processes=config.processes,
        threads=config.threads,
        timeout=config.timeout,
        retries=config.retries,
    )
    echo("running: " + " ".join(command))
    t0 = time.perf_counter()
    run_img2dataset(command)
    seconds = time.perf_counter() - t0
    report = read_outcomes(images).report(keys)
    report.write_failures(failures_file)
    return DownloadRun(folder, len(todo), seconds, read_run_stats(folder), report, failures_file)
