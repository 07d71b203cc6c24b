"""``referred data check``: problems named by file and id, exit code 0 only when usable."""

from __future__ import annotations

from pathlib import Path

from referred.data import check_dataset


def test_clean_fixture_is_usable(fixtures: Path, run_cli) -> None:
    code, out, err = run_cli("data", "check", fixtures / "training")
    assert code == 0, out + err
    assert "0 errors, 0 warnings: usable" in out


def test_corrupt_fixture_names_each_problem_and_fails(fixtures: Path, run_cli) -> None:
    code, out, err = run_cli("data", "check", fixtures / "training_corrupt")
    assert code == 1
    assert "Traceback" not in out + err
    assert "ERROR TRAIN/00000.tar [102]: corrupt-image" in out  # the truncated JPEG
    assert "ERROR TRAIN/00001.tar [103]: missing-simple" in out
    assert "ERROR TRAIN/00001.tar [106]: unknown-category" in out
    assert "ERROR TRAIN/00002.tar [105]: truncated-tar" in out
    assert "products read: train 3, valid 2, test 2" in out
    assert "4 errors, 0 warnings: NOT usable as is" in out


def test_no_decode_skips_image_errors(fixtures: Path) -> None:
    report = check_dataset(fixtures / "training_corrupt", decode=False)
    assert "corrupt-image" not in report.stats.problem_counts
    assert report.stats.problem_counts["missing-simple"] == 1


def test_metadata_disagreeing_with_shards_is_an_error(tmp_path: Path, fixtures: Path) -> None:
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(fixtures / "training", root)
    (root / "TRAIN" / "00001.tar").unlink()  # product 103 is still in the root metadata
    report = check_dataset(root)
    assert not report.ok
    mismatches = [p for p in report.stats.problems if p.kind == "metadata-mismatch"]
    assert {(p.file, p.item) for p in mismatches} == {
        ("products_simple_metadata.parquet", "103"),
        ("products_complex_metadata.parquet", "103"),
    }


def test_hf_layout_reports_incomplete_product(fixtures: Path, run_cli) -> None:
    code, out, _ = run_cli("data", "check", fixtures / "hf")
    assert code == 1 and "[104]: missing-complex" in out


def test_catalog_warning_does_not_fail(fixtures: Path, run_cli) -> None:
    code, out, _ = run_cli("data", "check", fixtures / "catalog.csv")
    assert code == 0 and "WARNING catalog.csv [A3]: unknown-category" in out


def test_not_a_dataset_is_one_line_exit_2(tmp_path: Path, run_cli) -> None:
    code, out, err = run_cli("data", "check", tmp_path / "absent")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "dataset not found" in err
    code, _, err = run_cli("data", "check", tmp_path)
    assert code == 2 and "no known dataset layout" in err


def test_limit_hides_the_rest(fixtures: Path, run_cli) -> None:
    code, out, _ = run_cli("data", "check", fixtures / "training_corrupt", "--limit", "1")
    assert code == 1 and "3 more problems not listed" in out
