"""``referred data prepare --download`` / ``--retry-failed``: img2dataset's outputs read back.

Unit tests read hand-written img2dataset outputs (``*_stats.json``, per-URL parquet) and drive
a fake img2dataset; the end-to-end test runs the real one (its own virtualenv, made on first
use by ``scripts/img2dataset_venv.py``) against a 127.0.0.1 server that fails some images on
purpose, then retries them.
"""

from __future__ import annotations

import json
import random
import stat
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from referred.data import open_dataset
from referred.data.convert import export_hf_metadata
from referred.data.files import url_keys
from referred.data.prepare import (
    DownloadConfig,
    download_images,
    normalise_reason,
    read_outcomes,
    read_run_stats,
)
from referred.data.prepare import download as download_module
from referred.data.prepare.outcomes import (
    FAILURES_FILE,
    DownloadReport,
    next_retry_folder,
    read_failures,
    run_folders,
)
from referred.data.records import DataFileError
from referred.data.synth import SynthConfig, write_synthetic_dataset
from tests.data.conftest import dataset_images
from tests.data.image_server import ImageServer, point_metadata_at

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


# --- reasons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "status", "reason"),
    [
        ("HTTP Error 404: Not Found", None, "404 Not Found"),
        ("HTTP Error 500: Internal Server Error", None, "500 Internal Server Error"),
        ("HTTP Error 504: Gateway Timeout", None, "504 Gateway Timeout"),
        ("timed out", None, "timeout"),
        ("The read operation timed out", None, "timeout"),
        ("<urlopen error timed out>", None, "timeout"),
        ("IncompleteRead(322 bytes read, 322 more expected)", None, "truncated download"),
        ("Image decoding error", "failed_to_resize", "undecodable image"),
        ("<urlopen error [Errno 111] Connection refused>", None, "connection refused"),
        ("[Errno 104] Connection reset by peer", None, "connection reset"),
        ("Remote end closed connection without response", None,
         "connection closed without an answer"),
        ("<urlopen error [Errno -2] Name or service not known>", None, "host not found"),
        ("<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
         "unable to get local issuer certificate (_ssl.c:1006)>", None, "TLS/SSL error"),
        ("unknown url type: 'ftp'", None, "unsupported URL"),
        ("image too small", "failed_to_resize", "image too small"),
        ("hash mismatch", "failed_to_download", "hash mismatch"),
        (None, "failed_to_download", "failed to download"),
        ("", None, "failed"),
        ("Something odd at 0x7f12 after 3 tries", None, "Something odd at NxNfN after N tries"),
    ],
)  # fmt: skip
def test_reasons_are_normalised(message: str | None, status: str | None, reason: str) -> None:
    assert normalise_reason(message, status) == reason


def test_an_unknown_long_message_is_cut_to_one_short_line() -> None:
    reason = normalise_reason("x" * 300 + "\nsecond line")
    assert len(reason) == 80 and reason.endswith("…") and "\n" not in reason


# --- img2dataset's outputs, hand-written ------------------------------------------------------

STATS_0 = {
    "count": 6,
    "successes": 3,
    "failed_to_download": 2,
    "failed_to_resize": 1,
    "duration": 1.5,
    "start_time": 1.0,
    "end_time": 2.5,
    "status_dict": {
        "success": 3,
        "HTTP Error 404: Not Found": 1,
        "IncompleteRead(10 bytes read, 10 more expected)": 1,
        "Image decoding error": 1,
    },
}
STATS_1 = {
    "count": 2,
    "successes": 0,
    "failed_to_download": 2,
    "failed_to_resize": 0,
    "duration": 0.5,
    "start_time": 3.0,
    "end_time": 3.5,
    "status_dict": {"timed out": 1, "IncompleteRead(7 bytes read, 9 more expected)": 1},
}


def _write_shard(folder: Path, name: str, rows: list[tuple], stats: dict | None) -> None:
    """rows: (url, status, error_message); a parquet table as img2dataset writes (jpg column
    with bytes for successes) and, when ``stats`` is given, the shard's ``_stats.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    urls, status, messages = (list(c) for c in zip(*rows))
    jpg = [b"\xff\xd8 image" if s == "success" else None for s in status]
    keys = [f"{name}{i:04d}" for i in range(len(rows))]
    table = pa.table(
        {"url": urls, "key": keys, "status": status, "error_message": messages, "jpg": jpg}
    )
    pq.write_table(table, folder / f"{name}.parquet")
    if stats is not None:
        (folder / f"{name}_stats.json").write_text(json.dumps(stats, indent=4))


def test_run_stats_sum_the_shards_and_group_reasons(tmp_path: Path) -> None:
    (tmp_path / "00000_stats.json").write_text(json.dumps(STATS_0))
    (tmp_path / "00001_stats.json").write_text(json.dumps(STATS_1))
    (tmp_path / "retry-1").mkdir()
    (tmp_path / "retry-1" / "00000_stats.json").write_text(json.dumps(STATS_0))  # not this run
    stats = read_run_stats(tmp_path)
    assert (stats.shards, stats.count, stats.successes) == (2, 8, 3)
    assert (stats.failed_to_download, stats.failed_to_resize, stats.failed) == (4, 1, 5)
    assert stats.duration == pytest.approx(2.0)
    assert stats.reasons == Counter(
        {"404 Not Found": 1, "truncated download": 2, "undecodable image": 1, "timeout": 1}
    )


def test_a_damaged_stats_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "00000_stats.json").write_text('{"count": 3')
    with pytest.raises(DataFileError, match=r"00000_stats\.json: not an img2dataset stats file"):
        read_run_stats(tmp_path)
    (tmp_path / "00000_stats.json").write_text('{"successes": 3}')
    with pytest.raises(DataFileError, match="not an img2dataset stats file"):
        read_run_stats(tmp_path)


def _two_runs(images: Path) -> None:
    """First run: a, b fetched; c 404; d truncated; e undecodable; f fetched. Retry 1: c still
    404 → now timed out; d fetched. An incomplete shard (no stats) of the retry is ignored."""
    _write_shard(images, "00000", [
        ("http://h/a.jpg", "success", None),
        ("http://h/b.jpg", "success", None),
        ("http://h/c.jpg", "failed_to_download", "HTTP Error 404: Not Found"),
        ("http://h/d.jpg", "failed_to_download", "IncompleteRead(5 bytes read, 5 more expected)"),
        ("http://h/e.jpg", "failed_to_resize", "Image decoding error"),
        ("http://h/f.jpg", "success", None),
    ], STATS_0)  # fmt: skip
    _write_shard(images / "retry-1", "00000", [
        ("http://h/c.jpg", "failed_to_download", "timed out"),
        ("http://h/d.jpg", "success", None),
    ], STATS_1)  # fmt: skip
    _write_shard(images / "retry-1", "00001", [("http://h/e.jpg", "success", None)], None)


def test_outcomes_over_runs_keep_every_success_and_the_latest_reason(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _two_runs(images)
    assert run_folders(images) == [images, images / "retry-1"]
    assert next_retry_folder(images) == images / "retry-2"
    wanted = [f"http://h/{c}.jpg" for c in "abcdefg"]  # g: never attempted
    report = read_outcomes(images).report(sorted(url_keys(wanted)))
    assert (report.total, report.fetched, report.failed, report.not_attempted) == (7, 4, 2, 1)
    assert report.success_rate == pytest.approx(4 / 7)
    assert report.failures() == [
        ("http://h/c.jpg", "timeout"),
        ("http://h/e.jpg", "undecodable image"),
    ]
    assert report.by_reason() == [("timeout", 1), ("undecodable image", 1)]
    lines = report.lines(images / FAILURES_FILE, tmp_path)
    assert lines[0] == ("downloaded 4 of 7 images: success rate 57.1%, 2 failed, 1 not attempted")
    assert any("images/failures.csv" in line and "--retry-failed" in line for line in lines)
    report.write_failures(tmp_path / "f.csv")
    assert read_failures(tmp_path / "f.csv") == report.failures()
    # only what the metadata wants is reported
    narrow = read_outcomes(images).report(sorted(url_keys(["http://h/a.jpg", "http://h/e.jpg"])))
    assert (narrow.total, narrow.fetched, narrow.failures()) == (
        2, 1, [("http://h/e.jpg", "undecodable image")]
    )  # fmt: skip


def test_no_outputs_and_no_failures(tmp_path: Path) -> None:
    empty = read_outcomes(tmp_path / "absent").report(sorted(url_keys(["http://h/a.jpg"])))
    assert (empty.total, empty.fetched, empty.failed, empty.not_attempted) == (1, 0, 0, 1)
    _write_shard(tmp_path / "i", "00000", [("http://h/a.jpg", "success", None)], STATS_1)
    full = read_outcomes(tmp_path / "i").report(sorted(url_keys(["http://h/a.jpg"])))
    assert full.success_rate == 1.0 and full.lines() == [
        "downloaded 1 of 1 images: success rate 100.0%"
    ]
    full.write_failures(tmp_path / "f.csv")
    assert read_failures(tmp_path / "f.csv") == []


@pytest.mark.parametrize(
    ("fetched", "total", "shown"),
    [(5447, 5448, "99.9%"), (5448, 5448, "100.0%"), (29, 100, "29.0%"), (0, 3, "0.0%"),
     (0, 0, "100.0%"), (2, 3, "66.6%")],
)  # fmt: skip
def test_the_success_rate_is_never_rounded_up(fetched: int, total: int, shown: str) -> None:
    failed = pa.array(["http://h/x.jpg"] * (total - fetched), pa.string())
    report = DownloadReport(total, fetched, failed, failed)
    assert report.success_percent == shown and f"success rate {shown}" in report.lines()[0]


# --- the retry logic, with a fake img2dataset -------------------------------------------------

_FAKE = '''#!{python}
"""A stand-in for img2dataset: URLs containing 'bad' fail (unless BAD_FIXED exists); logs the
URLs it was asked for, one line each, to ASKED."""
import json, sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
urls = pq.read_table(args["--url_list"]).column("url").to_pylist()
with open({asked!r}, "a") as f:
    f.writelines(u + "\\n" for u in urls)
fixed = Path({fixed!r}).exists()
ok = [fixed or "bad" not in u for u in urls]
out = Path(args["--output_folder"]); out.mkdir(parents=True, exist_ok=True)
pq.write_table(pa.table({{
    "url": urls,
    "status": ["success" if o else "failed_to_download" for o in ok],
    "error_message": [None if o else "HTTP Error 404: Not Found" for o in ok],
    "jpg": [b"jpg" if o else None for o in ok],
}}), out / "00000.parquet")
status = {{"success": sum(ok)}}
if not all(ok):
    status["HTTP Error 404: Not Found"] = len(ok) - sum(ok)
(out / "00000_stats.json").write_text(json.dumps({{
    "count": len(urls), "successes": sum(ok), "failed_to_download": len(ok) - sum(ok),
    "failed_to_resize": 0, "duration": 0.1, "status_dict": status}}))
'''


@pytest.fixture
def fake_i2d(tmp_path: Path) -> dict:
    exe = tmp_path / "bin" / "img2dataset"
    exe.parent.mkdir()
    asked, fixed = tmp_path / "asked.txt", tmp_path / "fixed"
    exe.write_text(_FAKE.format(python=sys.executable, asked=str(asked), fixed=str(fixed)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)

    def take_asked() -> list[str]:
        lines = asked.read_text().splitlines() if asked.exists() else []
        asked.unlink(missing_ok=True)
        return sorted(lines)

    return {"exe": exe, "asked": take_asked, "fix": lambda: fixed.touch()}


def test_retry_asks_only_for_the_failed_urls(tmp_path: Path, fake_i2d: dict) -> None:
    urls = [f"http://h/{n}.jpg" for n in ("a", "bad1", "b", "bad2", "c")]
    images, lists = tmp_path / "images", tmp_path / "lists"
    config = DownloadConfig(exe=fake_i2d["exe"], timeout=1, retries=0)
    said: list[str] = []
    first = download_images(urls, images, lists, config, echo=said.append)
    assert fake_i2d["asked"]() == sorted(urls) and said[0].startswith("running: ")
    assert "--timeout 1 --retries 0" in said[0]
    assert (first.report.fetched, first.report.failed, first.folder) == (3, 2, images)
    assert read_failures(images / FAILURES_FILE) == [
        ("http://h/bad1.jpg", "404 Not Found"),
        ("http://h/bad2.jpg", "404 Not Found"),
    ]
    assert first.lines()[0].startswith(f"img2dataset into {images}: 5 URLs in ")
    assert "3 fetched, 2 failed to download, 0 not decodable" in first.lines()[0]
    assert "404 Not Found  2" in first.lines()[2]

    still = download_images(urls, images, lists, config, retry_failed=True, echo=said.append)
    assert fake_i2d["asked"]() == ["http://h/bad1.jpg", "http://h/bad2.jpg"]
    assert still.folder == images / "retry-1" and still.report.failed == 2
    assert pq.read_table(lists / "retry-1.parquet").column("url").to_pylist() == [
        "http://h/bad1.jpg", "http://h/bad2.jpg"
    ]  # fmt: skip

    fake_i2d["fix"]()
    healed = download_images(urls, images, lists, config, retry_failed=True, echo=said.append)
    assert fake_i2d["asked"]() == ["http://h/bad1.jpg", "http://h/bad2.jpg"]
    assert healed.folder == images / "retry-2"
    assert (healed.report.fetched, healed.report.success_rate) == (5, 1.0)
    assert read_failures(images / FAILURES_FILE) == []

    done = download_images(urls, images, lists, config, retry_failed=True, echo=said.append)
    assert fake_i2d["asked"]() == [] and done.folder is None
    assert done.lines()[0].startswith("nothing to retry") and "100.0%" in done.lines()[1]


def test_retry_without_an_earlier_run_is_a_clear_error(tmp_path: Path, fake_i2d: dict) -> None:
    config = DownloadConfig(exe=fake_i2d["exe"])
    with pytest.raises(ValueError, match=r"no earlier img2dataset output .* --download first"):
        download_images(["http://h/a.jpg"], tmp_path / "i", tmp_path / "l", config,
                        retry_failed=True)  # fmt: skip
    assert fake_i2d["asked"]() == []


def test_a_failing_img2dataset_is_reported(tmp_path: Path) -> None:
    exe = tmp_path / "img2dataset"
    exe.write_text("#!/bin/sh\nexit 3\n")
    exe.chmod(0o755)
    with pytest.raises(ValueError, match="img2dataset exited with code 3"):
        download_images(["http://h/a.jpg"], tmp_path / "i", tmp_path / "l", DownloadConfig(exe))


def test_a_hanging_img2dataset_is_killed_at_the_limit(tmp_path: Path) -> None:
    exe = tmp_path / "img2dataset"
    exe.write_text("#!/bin/sh\nsleep 30 & wait\n")
    exe.chmod(0o755)
    with pytest.raises(ValueError, match=r"did not finish within 0\.5 s"):
        download_module.run_img2dataset([str(exe)], limit_s=0.5)


def test_cli_retry_needs_img2dataset(tmp_path: Path, run_cli, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_cli("data", "prepare", tmp_path / "hf", tmp_path / "out", "--images",
                           tmp_path / "i", "--retry-failed")  # fmt: skip
    assert code == 2 and "pip install img2dataset" in err and "img2dataset_venv.py" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("data", "prepare", tmp_path / "hf", tmp_path / "out", "--images",
                tmp_path / "i", "--download", "--timeout", "0")  # fmt: skip
    assert exc.value.code == 2 and "positive number of seconds" in capsys.readouterr().err


# --- for real: img2dataset against a local server ---------------------------------------------

SERVED = SynthConfig(
    products=150, distractors=30, size=32, seed=5, shard_size=50, dist_shard_size=20
)
FAILS = {"404": 8, "500": 3, "slow": 4, "truncated": 5, "corrupt": 4}
REASON = {
    "404": "404 Not Found",
    "500": "500 Internal Server Error",
    "slow": "timeout",
    "truncated": "truncated download",
    "corrupt": "undecodable image",
}


def _venv_module():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import img2dataset_venv
    finally:
        sys.path.remove(str(SCRIPTS))
    return img2dataset_venv


@pytest.fixture(scope="session")
def img2dataset_exe() -> Path:
    """The real img2dataset, in ``.cache/img2dataset/venv`` (made on first use, 2–3 min)."""
    venv = _venv_module()
    try:
        return venv.ensure_venv()
    except venv.VenvError as exc:
        pytest.skip(f"no img2dataset to test with: {exc}")


def test_a_venv_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    venv = _venv_module()
    with pytest.raises(venv.VenvError, match=r"could not install img2dataset==.* into "):
        venv.ensure_venv(tmp_path, python=str(tmp_path / "no-python"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A synthetic dataset: its images by server path, its HF metadata (URLs synth://…)."""
    root = tmp_path_factory.mktemp("served")
    write_synthetic_dataset(root / "ds", SERVED)
    export_hf_metadata(root / "ds", root / "hf-synth")
    images = {
        url.removeprefix("synth:/"): data for url, data in dataset_images(root / "ds").items()
    }
    ds = open_dataset(root / "ds")
    products = {s: sum(1 for _ in ds.products(s)) for s in ds.splits}
    return {"root": root, "images": images, "products": products}


def _kept_products(out: Path) -> dict[str, int]:
    ds = open_dataset(out)
    return {s: sum(1 for _ in ds.products(s)) for s in ds.splits}


@pytest.mark.img2dataset
def test_download_report_and_retry_against_a_local_server(
    img2dataset_exe: Path, served: dict, tmp_path: Path, run_cli, monkeypatch
) -> None:
    monkeypatch.setattr(download_module, "RUN_LIMIT_S", 240.0)  # each run takes ~10-25 s
    paths = sorted(served["images"])
    assert len(paths) >= 250
    chosen = random.Random(0).sample(paths, sum(FAILS.values()))
    modes = {}
    for mode, n in FAILS.items():
        modes.update((p, mode) for p in chosen[:n])
        chosen = chosen[n:]
    hf, out, images = tmp_path / "hf", tmp_path / "out", tmp_path / "images"
    with ImageServer(served["images"], modes, slow_s=8.0) as server:
        point_metadata_at(served["root"] / "hf-synth", hf, server.url(""))
        args = ["data", "prepare", hf, out, "--images", images, "--img2dataset",
                img2dataset_exe, "--processes", "1", "--threads", "16", "--timeout", "2",
                "--retries", "0"]  # fmt: skip

        code, said, _ = run_cli(*args, "--download")
        assert code == 0, said
        assert server.take_requests() == Counter(paths)  # each image asked for once
        total, failed = len(paths), len(modes)
        permille = 1000 * (total - failed) // total
        rate = f"{permille // 10}.{permille % 10}%"
        assert f"downloaded {total - failed} of {total} images: success rate {rate}" in said
        expected = Counter(REASON[m] for m in modes.values())
        for reason, n in expected.items():
            assert any(line.split() == [*reason.split(), str(n)] for line in said.splitlines())
        failures = read_failures(images / FAILURES_FILE)
        assert sorted(failures) == sorted((server.url(p), REASON[m]) for p, m in modes.items())
        first_kept = _kept_products(out)
        assert sum(first_kept.values()) < sum(served["products"].values())

        server.heal()
        code, said, _ = run_cli(*args, "--retry-failed")
        assert code == 0, said
        assert server.take_requests() == Counter(modes.keys())  # only the failed ones, once each
        assert f"downloaded {total} of {total} images: success rate 100.0%" in said
        assert read_failures(images / FAILURES_FILE) == []
        assert _kept_products(out) == served["products"]
        fetched = dataset_images(out)
        assert sorted(fetched) == sorted(server.url(p) for p in paths)

        code, said, _ = run_cli(*args, "--retry-failed")
        assert code == 0 and "nothing to retry" in said
        assert server.take_requests() == Counter()
