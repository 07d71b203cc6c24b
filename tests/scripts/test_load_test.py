"""scripts/load_test.py: fresh photos are new to the service, and a short run against a real
server counts only what it sent after its warm-up."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from load_test import fresh_photo, main

from referred.web.app import create_app
from referred.web.routes_deps import Catalog, get_catalog, get_searcher
from referred.web.settings import Settings
from tests.web.conftest import FakeSearcher, make_catalog, serving


def jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_fresh_photos_differ_from_each_other_and_barely_from_the_sample():
    y, x = np.mgrid[0:32, 0:48]
    sample = jpeg(np.stack([x * 5, y * 7, (x + y) * 3], -1).astype(np.uint8))  # a smooth photo
    base = np.asarray(Image.open(io.BytesIO(sample)), dtype=np.int16)
    photos = [np.asarray(Image.open(io.BytesIO(fresh_photo(sample, s))), np.int16) for s in (1, 2)]
    assert photos[0].shape == base.shape == (32, 48, 3)
    assert not np.array_equal(photos[0], photos[1])
    assert np.abs(photos[0] - base).mean() < 3.0  # faint noise and a re-encode, not a new photo
    assert np.array_equal(photos[0], np.asarray(Image.open(io.BytesIO(fresh_photo(sample, 1)))))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    model, index = make_catalog(root / "images")
    samples = root / "samples"
    samples.mkdir()
    for i in range(2):
        rgb = np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        (samples / f"scene-{i}.jpg").write_bytes(jpeg(rgb))
    app = create_app(Settings(image_root=root / "images", samples_dir=samples))
    searcher = FakeSearcher(model, index)
    app.dependency_overrides[get_searcher] = lambda: searcher
    app.dependency_overrides[get_catalog] = lambda: Catalog(searcher)
    with serving(app, start_timeout=20) as url:
        yield url


@pytest.mark.parametrize("fresh", [False, True])
def test_a_short_run_reports_what_it_counted(server, tmp_path, fresh):
    out = tmp_path / "load.json"
    argv = ["--url", server, "--clients", "2", "--duration", "1", "--warmup", "0.5"]
    assert main([*argv, "--json", str(out), *(["--fresh"] if fresh else [])]) == 0
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["ok"] == report["requests"] > 0
    assert report["fresh_photos"] is fresh and report["warmup_s"] == 0.5
    assert 0.9 <= report["duration_s"] <= 3.0  # the counted part only: not the warm-up
    assert report["qps"] == pytest.approx(report["ok"] / report["duration_s"], rel=0.05)
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]


def test_only_loopback_addresses_are_load_tested():
    with pytest.raises(SystemExit, match="only loopback"):
        main(["--url", "http://192.0.2.1:8000", "--duration", "1"])
