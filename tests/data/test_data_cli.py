"""The ``referred data`` verbs end to end, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from referred.data import open_dataset


def test_synth_then_check(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "ds"
    code, stdout, _ = run_cli("data", "synth", out, "--products", "15", "--distractors", "3",
                              "--size", "24", "--seed", "1")  # fmt: skip
    assert code == 0
    assert "products (train 9, valid 3, test 3)" in stdout
    code, stdout, _ = run_cli("data", "check", out)
    assert code == 0 and "usable" in stdout
    code, _, err = run_cli("data", "synth", out, "--products", "15")
    assert code == 2 and "pass --overwrite" in err
    code, _, _ = run_cli("data", "synth", out, "--products", "15", "--distractors", "3",
                         "--size", "24", "--overwrite")  # fmt: skip
    assert code == 0


def test_synth_sizes_and_held_out_style_flags(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "ds"
    code, stdout, _ = run_cli("data", "synth", out, "--products", "12", "--distractors", "2",
                              "--size", "24", "--scene-size", "40",
                              "--heldout-style", "none")  # fmt: skip
    assert code == 0 and "held-out" not in stdout
    assert not (out / "heldout_style").exists()
    scene = next(p for p in open_dataset(out).products("test")).complex[0].open()
    assert scene.size == (40, 40)
    code, stdout, _ = run_cli("data", "synth", tmp_path / "b", "--products", "12",
                              "--distractors", "2", "--size", "24",
                              "--heldout-style", "comic")  # fmt: skip
    assert code == 0 and "held-out style 'comic'" in stdout
    code, _, err = run_cli("data", "synth", tmp_path / "c", "--heldout-style", "oil")
    assert code == 2 and "unknown style 'oil'" in err


def test_bad_flag_values_are_argparse_errors(tmp_path: Path, run_cli, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("data", "synth", tmp_path, "--products", "-3")
    assert exc.value.code == 2
    assert "expected a positive integer, got -3" in capsys.readouterr().err


def test_data_needs_a_command(run_cli) -> None:
    with pytest.raises(SystemExit):
        run_cli("data")
