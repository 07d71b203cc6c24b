"""Shared fixtures of the data tests: the committed fixture folders, a small synthetic
dataset (built once per session), a fake img2dataset output, and an in-process CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from referred.data import open_dataset
from referred.data.synth import SynthConfig, write_synthetic_dataset
from referred.data.tario import TarShardWriter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"

SMALL_SYNTH = SynthConfig(
    products=60, distractors=12, size=32, seed=3, shard_size=20, dist_shard_size=5
)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The committed fixtures (``scripts/make_data_fixtures.py``)."""
    return FIXTURES


@pytest.fixture(scope="session")
def synth_config() -> SynthConfig:
    """The configuration of :func:`synth_root`."""
    return SMALL_SYNTH


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset in the training layout (read-only for tests)."""
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_synthetic_dataset(out, SMALL_SYNTH)
    return out


def dataset_images(root: Path) -> dict[str, bytes]:
    """URL → bytes of every image (products and distractors) of a training-layout folder."""
    ds = open_dataset(root)
    images: dict[str, bytes] = {}
    for split in ds.splits:
        for product in ds.products(split):
            for image in product.images:
                images[str(image.url)] = image.read_bytes()
    for split in ds.distractor_splits:
        for distractor in ds.distractors(split):
            images[str(distractor.image.url)] = distractor.image.read_bytes()
    return images


def write_fake_img2dataset(
    images: dict[str, bytes], out: Path, fmt: str, per_shard: int = 100
) -> None:
    """Write ``images`` as img2dataset would: parquet shards or webdataset tars + sidecars.

    A value of ``None``-like empty bytes ``b""`` marks a failed download.
    """
    out.mkdir(parents=True, exist_ok=True)
    items = sorted(images.items())
    for shard, start in enumerate(range(0, len(items), per_shard)):
        part = items[start : start + per_shard]
        keys = [f"{shard:05d}{i:04d}" for i in range(len(part))]
        status = ["success" if data else "failed_to_download" for _, data in part]
        urls = [url for url, _ in part]
        if fmt == "parquet":
            jpgs = [data or None for _, data in part]
            table = pa.table({"url": urls, "key": keys, "status": status, "jpg": jpgs})
            pq.write_table(table, out / f"{shard:05d}.parquet")
            continue
        with TarShardWriter(out / f"{shard:05d}.tar") as tar:
            for key, (url, data) in zip(keys, part):
                if data:
                    tar.add(f"{key}.jpg", data)
                    tar.add(f"{key}.json", json.dumps({"url": url, "key": key}).encode())
        pq.write_table(pa.table({"url": urls, "key": keys, "status": status}),
                       out / f"{shard:05d}.parquet")  # fmt: skip


@pytest.fixture(scope="session")
def images_of() -> Callable[[Path], dict[str, bytes]]:
    """:func:`dataset_images`, as a fixture."""
    return dataset_images


@pytest.fixture(scope="session")
def fake_img2dataset() -> Callable[..., None]:
    """:func:`write_fake_img2dataset`, as a fixture."""
    return write_fake_img2dataset


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable:
    """Run ``referred ARGS`` in-process (only the ``data`` verb registered)."""
    import referred.cli as cli

    monkeypatch.setattr(cli, "_VERBS", ("data",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
