"""Drive img2dataset (an optional tool, installed in its own virtualenv) to fetch the images.

img2dataset pins old versions of pandas, webdataset and opencv that conflict with this
package, so it is never imported: it runs as a separate program found on ``PATH`` or given
by path. Downloading needs network access; many LAION URLs are dead, so expect failures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from referred.data.files import atomic_output

INSTALL_HINT = (
    "img2dataset is not installed (not found on PATH); install it in a separate virtualenv, "
    "e.g. `python -m venv ~/.venvs/img2dataset && ~/.venvs/img2dataset/bin/pip install "
    "img2dataset`, then pass --img2dataset ~/.venvs/img2dataset/bin/img2dataset"
)


def find_img2dataset(explicit: Path | None = None) -> Path:
    """The img2dataset executable: ``explicit`` if given, else the one on ``PATH``."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"img2dataset executable not found: {explicit}")
        return Path(explicit)
    found = shutil.which("img2dataset")
    if found is None:
        raise ValueError(INSTALL_HINT)
    return Path(found)


def write_url_list(urls: list[str], path: Path) -> Path:
    """Write the distinct ``urls`` (sorted) as a one-column parquet file for img2dataset."""
    table = pa.table({"url": sorted(set(urls))})
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
) -> list[str]:
    """The img2dataset command line: originals kept (no resize), JPEG, resumable."""
    if output_format not in ("parquet", "webdataset"):
        raise ValueError(f"output format {output_format!r}; expected parquet or webdataset")
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
        "--retries", "2",
        "--incremental_mode", "incremental",
        "--enable_wandb", "False",
    ]  # fmt: skip


def run_img2dataset(command: list[str]) -> None:
    """Run img2dataset; a non-zero exit raises ``ValueError`` with its code."""
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise ValueError(f"img2dataset exited with code {result.returncode}: {' '.join(command)}")
