"""What img2dataset fetched and why the rest failed, read back from its own outputs.

img2dataset writes, per shard, ``{shard}_stats.json`` (counts, and ``status_dict``: how many
times each error message occurred) once the shard is complete, and a parquet table with one row
per URL (``url``, ``status``: ``success`` / ``failed_to_download`` / ``failed_to_resize``, and
``error_message``): the image table itself with ``--output_format parquet``, a sidecar next to
the tar with ``webdataset``. Error messages are Python exception texts (``HTTP Error 404: Not
Found``, ``timed out``, ``IncompleteRead(322 bytes read, 322 more expected)``…);
:func:`normalise_reason` folds them into a few reasons a person can act on.

Several runs share one images folder: the first run writes into it, each retry of the failed
URLs into ``retry-{n}/`` below it (:func:`run_folders`). A URL counts as fetched when any run
fetched it; a URL that never succeeded keeps the reason of its latest attempt. Only complete
shards (with their ``_stats.json``) are read. Everything is kept as arrays keyed by
:func:`~referred.data.files.url_key`, so millions of URLs fit in memory.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from referred.data.files import (
    atomic_output,
    display_path,
    find_column,
    open_parquet,
    sorted_lookup,
    url_keys,
)
from referred.data.records import DataFileError

RETRY_PREFIX = "retry-"
FAILURES_FILE = "failures.csv"
STATS_SUFFIX = "_stats.json"

# (pattern, reason) in order; the first match wins. ``\1``… refer to the pattern's groups.
_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^HTTP Error (\d{3}): ?(.*)$", re.S), r"\1 \2"),
    (re.compile(r"timed out|timeout", re.I), "timeout"),
    (re.compile(r"IncompleteRead|incomplete read", re.I), "truncated download"),
    (re.compile(r"^Image decoding error$|cannot identify image", re.I), "undecodable image"),
    (re.compile(r"Connection refused", re.I), "connection refused"),
    (re.compile(r"Connection reset", re.I), "connection reset"),
    (
        re.compile(r"Remote end closed connection|RemoteDisconnected|BadStatusLine", re.I),
        "connection closed without an answer",
    ),
    (
        re.compile(
            r"Name or service not known|Temporary failure in name resolution|"
            r"nodename nor servname|getaddrinfo failed|No address associated",
            re.I,
        ),
        "host not found",
    ),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|\bSSL\b|TLS", re.I), "TLS/SSL error"),
    (re.compile(r"redirect", re.I), "redirect error"),
    (re.compile(r"unknown url type|no host given", re.I), "unsupported URL"),
    (re.compile(r"Network is unreachable|No route to host", re.I), "network unreachable"),
    (re.compile(r"X-Robots-Tag", re.I), "disallowed by X-Robots-Tag"),
]
_UNKNOWN_MAX = 80


def normalise_reason(message: str | None, status: str | None = None) -> str:
    """A short, stable reason for one failed URL from img2dataset's ``error_message``.

    HTTP errors keep their code and phrase (``404 Not Found``); timeouts, truncated bodies,
    undecodable bytes and the usual network errors get one name each; img2dataset's own
    rejections (``image too small``, ``hash mismatch``…) are kept as they are; anything else
    is its first line, with numbers replaced by ``N`` so that messages differing only in a
    count or an address group together. Without a message, the ``status``.
    """
    text = (message or "").strip()
    if not text:
        return (status or "failed").replace("_", " ")
    for pattern, reason in _REASONS:
        match = pattern.search(text)
        if match:
            return match.expand(reason).strip() if "\\" in reason else reason
    first = re.sub(r"\d+", "N", text.splitlines()[0])
    return first if len(first) <= _UNKNOWN_MAX else first[: _UNKNOWN_MAX - 1] + "…"


@dataclass
class RunStats:
    """img2dataset's own counts for one output folder, summed over its complete shards."""

    shards: int = 0
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0
    duration: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return self.failed_to_download + self.failed_to_resize


def read_run_stats(folder: Path) -> RunStats:
    """Sum the ``*_stats.json`` files directly in ``folder`` (reasons normalised).

    A stats file that is not valid JSON, or not img2dataset's, raises ``DataFileError``.
    """
    stats = RunStats()
    for path in sorted(Path(folder).glob(f"*{STATS_SUFFIX}")):
        try:
            data = json.loads(path.read_text())
            counts = {
                k: int(data[k])
                for k in ("count", "successes", "failed_to_download", "failed_to_resize")
            }
            status_dict = {str(k): int(v) for k, v in dict(data.get("status_dict") or {}).items()}
            duration = float(data.get("duration") or 0.0)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DataFileError(f"{path}: not an img2dataset stats file ({exc!r})") from exc
        stats.shards += 1
        stats.count += counts["count"]
        stats.successes += counts["successes"]
        stats.failed_to_download += counts["failed_to_download"]
        stats.failed_to_resize += counts["failed_to_resize"]
        stats.duration += duration
        for message, n in status_dict.items():
            if message != "success":
                stats.reasons[normalise_reason(message)] += n
    return stats


def _retry_number(folder: Path) -> int | None:
    name = folder.name
    if name.startswith(RETRY_PREFIX) and name[len(RETRY_PREFIX) :].isdigit():
        return int(name[len(RETRY_PREFIX) :])
    return None


def run_folders(images: Path) -> list[Path]:
    """Folders under ``images`` holding complete img2dataset shards, oldest run first.

    ``images`` itself and any other folders (someone's own runs, one per metadata file) come
    first in path order, then ``retry-1``, ``retry-2``… by number.
    """
    images = Path(images)
    if not images.is_dir():
        return []
    found = {p.parent for p in images.rglob(f"*{STATS_SUFFIX}")}

    def order(folder: Path) -> tuple[int, int, str]:
        top = folder.relative_to(images).parts[:1]
        n = _retry_number(images / top[0]) if top else None
        return (0 if n is None else 1, n or 0, folder.as_posix())

    return sorted(found, key=order)


def next_retry_folder(images: Path) -> Path:
    """``images/retry-{n}`` for the first ``n`` above every existing retry folder."""
    taken = [_retry_number(p) for p in Path(images).glob(f"{RETRY_PREFIX}*") if p.is_dir()]
    return Path(images) / f"{RETRY_PREFIX}{max([n for n in taken if n] or [0]) + 1}"


@dataclass
class Outcomes:
    """The final state of every URL img2dataset attempted, over all runs.

    ``ok``: sorted url keys fetched by some run. ``failed_keys``, ``failed_urls``,
    ``failed_reasons`` (aligned, sorted by key): the URLs no run fetched, each with the reason
    of its latest attempt.
    """

    ok: np.ndarray
    failed_keys: np.ndarray
    failed_urls: pa.Array
    failed_reasons: pa.Array

    def report(self, wanted: np.ndarray) -> DownloadReport:
        """The report over the sorted url keys ``wanted`` (what the metadata asks for)."""
        wanted = np.asarray(wanted, dtype=np.uint64)
        fetched = int((sorted_lookup(self.ok, wanted) >= 0).sum()) if len(wanted) else 0
        keep = sorted_lookup(wanted, self.failed_keys) >= 0
        take = pa.array(np.flatnonzero(keep), pa.int64())
        return DownloadReport(
            total=len(wanted),
            fetched=fetched,
            failed_urls=self.failed_urls.take(take),
            failed_reasons=self.failed_reasons.take(take),
        )


def _shard_rows(stats_file: Path) -> pa.Table | None:
    stem = stats_file.name[: -len(STATS_SUFFIX)]
    table_path = stats_file.with_name(stem + ".parquet")
    if not table_path.is_file():
        return None  # img2dataset's files output: no per-URL table
    pf = open_parquet(table_path)
    names = pf.schema_arrow.names
    cols = [find_column(names, [n]) for n in ("url", "status", "error_message")]
    if cols[0] is None or cols[1] is None:
        raise DataFileError(f"{table_path}: no url/status columns; not an img2dataset shard")
    try:
        table = pf.read(columns=[c for c in cols if c is not None])
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{table_path}: parquet file damaged while reading ({exc})") from exc
    message = (
        table.column(cols[2]) if cols[2] is not None else pa.nulls(table.num_rows, pa.string())
    )
    return pa.table(
        {
            "url": table.column(cols[0]).cast(pa.string()),
            "status": table.column(cols[1]).cast(pa.string()),
            "error_message": message.cast(pa.string()),
        }
    )


def read_outcomes(images: Path) -> Outcomes:
    """Read every complete shard of every run under ``images`` (see :func:`run_folders`)."""
    keys, oks, codes, urls = [], [], [], []
    reasons: dict[str, int] = {}
    cache: dict[tuple[str | None, str | None], int] = {}
    for folder in run_folders(images):
        for stats_file in sorted(folder.glob(f"*{STATS_SUFFIX}")):
            rows = _shard_rows(stats_file)
            if rows is None or rows.num_rows == 0:
                continue
            rows = rows.filter(pc.is_valid(rows.column("url")))
            ok = pc.fill_null(pc.equal(rows.column("status"), "success"), False)
            ok = ok.to_numpy(zero_copy_only=False)
            code = np.full(rows.num_rows, -1, dtype=np.int32)
            bad = np.flatnonzero(~ok)
            if len(bad):
                failed = rows.take(pa.array(bad, pa.int64()))
                pairs = zip(
                    failed.column("error_message").to_pylist(),
                    failed.column("status").to_pylist(),
                )
                for i, pair in zip(bad, pairs):
                    if pair not in cache:
                        reason = normalise_reason(*pair)
                        cache[pair] = reasons.setdefault(reason, len(reasons))
                    code[i] = cache[pair]
                if len(cache) > 100_000:
                    cache.clear()  # messages with counts in them: keep memory bounded
            keys.append(url_keys(rows.column("url").to_pylist()))
            oks.append(ok)
            codes.append(code)
            urls.append(rows.column("url").combine_chunks())
    if not keys:
        empty = np.zeros(0, np.uint64)
        return Outcomes(empty, empty, pa.array([], pa.string()), pa.array([], pa.string()))
    key, ok, code = np.concatenate(keys), np.concatenate(oks), np.concatenate(codes)
    url = pa.concat_arrays(urls)
    fetched = np.unique(key[ok])
    failed = np.flatnonzero(~ok & (sorted_lookup(fetched, key) < 0))
    # the latest attempt of each failed URL: the last row of its key in run order
    last = len(failed) - 1 - np.unique(key[failed][::-1], return_index=True)[1]
    latest = failed[last]  # sorted by key (np.unique's order)
    names = np.array(list(reasons), dtype=object)
    return Outcomes(
        ok=fetched,
        failed_keys=key[latest],
        failed_urls=url.take(pa.array(latest, pa.int64())),
        failed_reasons=pa.array(names[code[latest]].tolist() if len(latest) else [], pa.string()),
    )


@dataclass
class DownloadReport:
    """Fetched / failed / not attempted among the URLs the metadata wants."""

    total: int
    fetched: int
    failed_urls: pa.Array
    failed_reasons: pa.Array

    @property
    def failed(self) -> int:
        return len(self.failed_urls)

    @property
    def not_attempted(self) -> int:
        return self.total - self.fetched - self.failed

    @property
    def success_rate(self) -> float:
        return self.fetched / self.total if self.total else 1.0

    @property
    def success_percent(self) -> str:
        """The rate in percent, one decimal, rounded down: 100.0% only when all were fetched."""
        permille = 1000 * self.fetched // self.total if self.total else 1000
        return f"{permille // 10}.{permille % 10}%"

    def by_reason(self) -> list[tuple[str, int]]:
        """``(reason, count)``, most frequent first (ties by name)."""
        counts = Counter(self.failed_reasons.to_pylist())
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def failures(self) -> list[tuple[str, str]]:
        """``(url, reason)`` of every failed URL, by reason then URL."""
        pairs = zip(self.failed_urls.to_pylist(), self.failed_reasons.to_pylist())
        return sorted(pairs, key=lambda p: (p[1], p[0]))

    def write_failures(self, path: Path) -> Path:
        """Write :meth:`failures` as CSV (header ``url,reason``); an empty table when none."""
        table = pa.table({"url": self.failed_urls, "reason": self.failed_reasons}).sort_by(
            [("reason", "ascending"), ("url", "ascending")]
        )
        with atomic_output(Path(path)) as tmp:
            pacsv.write_csv(table, tmp)
        return Path(path)

    def lines(self, failures_file: Path | None = None, root: Path | None = None) -> list[str]:
        """The summary a person reads: success rate, failures by reason, where the list is."""
        lines = [
            f"downloaded {self.fetched} of {self.total} images: "
            f"success rate {self.success_percent}"
            + (f", {self.failed} failed" if self.failed else "")
            + (f", {self.not_attempted} not attempted" if self.not_attempted else "")
        ]
        width = max((len(r) for r, _ in self.by_reason()), default=0)
        lines += [f"  {reason:<{width}}  {n}" for reason, n in self.by_reason()]
        if self.failed and failures_file is not None:
            lines.append(
                f"failed URLs and reasons: {display_path(Path(failures_file), root)}; "
                "fetch only those again with --retry-failed"
            )
        if self.not_attempted:
            lines.append(
                "some URLs were never attempted (an interrupted run?): run --download again "
                "to finish it"
            )
        return lines


def read_failures(path: Path) -> list[tuple[str, str]]:
    """The ``(url, reason)`` rows of a file written by :meth:`DownloadReport.write_failures`."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={"url": pa.string(), "reason": pa.string()}
            ),
        )
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: not a failures file ({exc})") from exc
    return list(zip(table.column("url").to_pylist(), table.column("reason").to_pylist()))
