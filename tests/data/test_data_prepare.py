"""``referred data prepare`` on a fake img2dataset output: counts, layout, idempotence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from referred.data import check_dataset, open_dataset
from referred.data.convert import export_hf_metadata
from referred.data.prepare import PrepareConfig, img2dataset_command, prepare_dataset
from referred.data.synth import OUTFITS_FILE


@pytest.fixture(scope="module")
def hf_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset's metadata in the Hugging Face layout."""
    out = tmp_path_factory.mktemp("hf")
    export_hf_metadata(synth_root, out)
    return out


@pytest.fixture(scope="module")
def damaged(synth_root: Path, images_of) -> dict:
    """Images with damage: product 1's simple image failed, product 2's is corrupt, and the
    only scene of one single-scene train outfit failed (its products lose their complex side)."""
    images = images_of(synth_root)
    scenes = pq.read_table(synth_root / OUTFITS_FILE).to_pylist()
    per_outfit: dict[int, list[dict]] = {}
    for scene in scenes:
        per_outfit.setdefault(scene["OUTFIT_ID"], []).append(scene)
    lonely = next(
        rows[0]
        for rows in per_outfit.values()
        if len(rows) == 1
        and rows[0]["SPLIT"] == "train"
        and not {1, 2} & set(rows[0]["PRODUCT_IDS"])
    )
    seed = 3
    images[f"synth://{seed}/product/1.jpg"] = b""
    corrupt = images[f"synth://{seed}/product/2.jpg"]
    images[f"synth://{seed}/product/2.jpg"] = corrupt[: len(corrupt) // 2]
    images[lonely["URL"]] = b""
    return {"images": images, "lonely": lonely}


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".prepare" not in p.parts
    }


def test_prepare_builds_the_layout_and_counts_drops(
    hf_root: Path, damaged: dict, synth_config, tmp_path: Path, fake_img2dataset
) -> None:
    fake_img2dataset(damaged["images"], tmp_path / "i2d", "parquet", per_shard=70)
    out = tmp_path / "out"
    config = PrepareConfig(hf_root, tmp_path / "i2d", out, shard_size=20, dist_shard_size=5)
    report = prepare_dataset(config)
    train = report.products["train"]
    lost = len(damaged["lonely"]["PRODUCT_IDS"])
    assert (train.dropped_no_simple, train.dropped_no_complex) == (2, lost)
    assert train.images_corrupt == 1 and train.images_missing == 1 + lost
    assert train.kept == synth_config.split_sizes()["train"] - 2 - lost
    assert report.products["test"].kept == synth_config.split_sizes()["test"]
    assert report.distractors["test"].kept == 12
    assert "dropped 2 without simple / " in report.summary_lines()[0]
    assert report.stats.problem_counts["corrupt-image"] == 1

    check = check_dataset(out)
    assert check.ok, [str(p) for p in check.stats.problems]
    assert check.products["train"] == train.kept
    ds = open_dataset(out)
    ids = {p.product_id for p in ds.products("train")}
    assert not {"1", "2"} & ids
    assert (out / "bootstrap_IDs.pkl").read_bytes() == (hf_root / "bootstrap_IDs.pkl").read_bytes()


def test_prepare_is_idempotent_and_resumable(
    hf_root: Path, damaged: dict, tmp_path: Path, fake_img2dataset
) -> None:
    fake_img2dataset(damaged["images"], tmp_path / "i2d", "parquet")
    out = tmp_path / "out"
    config = PrepareConfig(hf_root, tmp_path / "i2d", out, shard_size=20, dist_shard_size=5)
    first = prepare_dataset(config)
    before = _snapshot(out)
    again = prepare_dataset(config)
    assert again.units.written == [] and sorted(again.units.skipped) == sorted(first.units.written)
    assert again.summary_lines()[:-1] == first.summary_lines()[:-1]
    assert _snapshot(out) == before  # same bytes, untouched files
    (out / "TRAIN" / "00001.tar").unlink()  # as if interrupted before that shard
    resumed = prepare_dataset(config)
    assert resumed.units.written == ["TRAIN/00001.tar"]
    assert {k: v[0] for k, v in _snapshot(out).items()} == {k: v[0] for k, v in before.items()}


def test_prepare_reads_webdataset_output(
    hf_root: Path, synth_root: Path, tmp_path: Path, fake_img2dataset, images_of
) -> None:
    fake_img2dataset(images_of(synth_root), tmp_path / "i2d", "webdataset")
    out = tmp_path / "out"
    report = prepare_dataset(PrepareConfig(hf_root, tmp_path / "i2d", out, verify=False))
    assert all(c.dropped_no_simple == c.dropped_no_complex == 0 for c in report.products.values())
    assert report.stats.errors == 0
    assert check_dataset(out, decode=False).ok
    # the same products as the synthetic original, byte for byte
    original = {p.product_id: p for p in open_dataset(synth_root).products("valid")}
    for product in open_dataset(out).products("valid"):
        assert [im.data for im in product.images] == [
            im.data for im in original[product.product_id].images
        ]


def test_prepare_without_images_keeps_nothing(hf_root: Path, tmp_path: Path, run_cli) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(
        "data", "prepare", hf_root, tmp_path / "out", "--images", tmp_path / "empty"
    )
    assert code == 1 and "0 products kept" in out and "no product could be kept" in out


def test_download_needs_img2dataset(hf_root: Path, tmp_path: Path, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_cli(
        "data", "prepare", hf_root, tmp_path / "out", "--images", tmp_path / "i2d", "--download"
    )
    assert code == 2 and "pip install img2dataset" in err and "Traceback" not in err


def test_img2dataset_command_line(tmp_path: Path) -> None:
    cmd = img2dataset_command(Path("/bin/i2d"), tmp_path / "urls.parquet", tmp_path / "img",
                              output_format="webdataset", processes=4)  # fmt: skip
    assert cmd[0] == "/bin/i2d"
    pairs = dict(zip(cmd[1::2], cmd[2::2]))
    assert pairs["--output_format"] == "webdataset" and pairs["--url_col"] == "url"
    assert pairs["--processes_count"] == "4" and pairs["--incremental_mode"] == "incremental"
    with pytest.raises(ValueError, match="expected parquet or webdataset"):
        img2dataset_command(Path("x"), Path("u"), Path("o"), output_format="files")


def test_not_hf_metadata_is_a_clear_error(tmp_path: Path, fixtures: Path) -> None:
    shutil.copytree(fixtures / "catalog", tmp_path / "cat")
    with pytest.raises(ValueError, match=r"expected data/\{train,validation,test\}"):
        prepare_dataset(PrepareConfig(tmp_path / "cat", tmp_path, tmp_path / "out"))


def test_exported_hf_metadata_is_clean(hf_root: Path, synth_config) -> None:
    report = check_dataset(hf_root)
    assert report.ok and report.products == synth_config.split_sizes()
    assert report.distractors == {"valid": 12, "test": 12}
