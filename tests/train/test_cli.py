"""``referred train`` on the command line: bad flags are named, a run prints its result."""

from __future__ import annotations

import pytest

from referred.cli.train import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--conditioning", "colour"], "unknown conditioning 'colour'; expected one of"),
        (
            ["--model", "B-99"],
            "neither an architecture (B-16, B-32, L-14, hybrid-lite0, hybrid-lite0-128, "
            "hybrid-lite0-pyramid, tiny",
        ),
        (["--precision", "fp8"], "unknown precision 'fp8'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message(capsys, tmp_path, flags, message):
    code, text = _run(capsys, "--data", str(tmp_path), "--out", str(tmp_path / "o"), *flags)
    assert code == 2 and message in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0"], "expected a number > 0, got 0"),
        (["--lr=-1e-3"], "expected a number > 0, got -1e-3"),
        (["--epochs", "0"], "expected an integer >= 1, got 0"),
        (["--batch-size", "many"], "expected an integer >= 1, got 'many'"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(capsys, tmp_path, flags, message):
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_data_folder_is_named(capsys, tmp_path):
    code, text = _run(capsys, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert code == 2 and f"dataset not found: {tmp_path / 'nope'}" in text


def test_a_micro_run_from_the_command_line(capsys, synth_data, micro_arch, tmp_path):
    argv = [
        "--data",
        str(synth_data),
        "--model",
        str(micro_arch),
        "--out",
        str(tmp_path / "o"),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--threads",
        "1",
        "--no-progress",
    ]
    code, text = _run(capsys, *argv)
    assert code == 0 and "finished: 1 epochs, 6 steps" in text
    code, text = _run(capsys, *argv, "--resume")  # nothing left to do
    assert code == 0 and "finished: 1 epochs" in text
