"""``referred benchmark`` end to end, through its own parser (the verb is registered by
``referred.cli`` once listed there)."""

from __future__ import annotations

import argparse
import json

import pytest

import referred
from referred.cli import UserError
from referred.cli.benchmark import parse_counts, register
from referred.data.synth import SynthConfig, write_synthetic_dataset
from tests.data.flavours import EMBEDDINGS, layout


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="referred")
    register(parser.add_subparsers(dest="verb", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    cfg = SynthConfig(products=30, distractors=20, size=32, test_fraction=0.5)
    write_synthetic_dataset(root / "ds", cfg)
    referred.create_model("tiny", seed=0).save_pretrained(root / "m")
    return root


def test_cli_end_to_end_writes_the_four_files_and_plots(setup, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "benchmark",
        "--data",
        str(setup / "ds"),
        "--model",
        str(setup / "m"),
        "--distractors",
        "0,10,1K",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--baselines",
        "--allow-fewer-distractors",
        "--decode",
        "reference",
        "--no-progress",
    ]
    args = parse(argv)
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "| m (category) |" in captured.out and "(none + category filter)" in captured.out
    assert "warning: distractor counts [1000] cannot be served: only 20" in captured.err
    for name in ("report.json", "table.md", "model_card.yaml", "r1.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["distractor_counts"] == [0, 10, 20] and report["model"] == "m"
    assert report["decode"] == "reference" and "[1000] replaced by 20" in report["warnings"][0]

    args = parse(
        [
            "benchmark",
            "plot",
            str(out / "report.json"),
            str(out / "report_baseline_unconditional.json"),
            "--out",
            str(tmp_path / "p.png"),
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_needs_a_model_or_embeddings(setup):
    args = parse(["benchmark", "--data", str(setup / "ds")])
    with pytest.raises(UserError, match="exactly one of --model and --embeddings"):
        args.func(args)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``referred ARGS`` through the real entry point (only the benchmark verb registered)."""
    import referred.cli as cli

    monkeypatch.setattr(cli, "_VERBS", ("benchmark",))

    def run(*argv):
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_embeddings_from_metadata_alone_and_too_many_distractors(tmp_path, run_cli):
    root = layout("pandas3-default", "hf", tmp_path)
    base = ("benchmark", "--data", root, "--embeddings", EMBEDDINGS, "--no-progress")
    code, _, err = run_cli(*base, "--out", tmp_path / "a", "--distractors", "0,2,10K")
    assert code == 2
    assert "distractor counts [10000] cannot be served: only 4 distractors exist" in err
    assert "0,2,4" in err and "--allow-fewer-distractors" in err
    code, out, err = run_cli(
        *base, "--out", tmp_path / "b", "--distractors", "0,2,10K", "--allow-fewer-distractors"
    )
    assert code == 0 and "| embeddings (category) |" in out
    assert "warning: distractor counts [10000] cannot be served" in err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["distractor_counts"] == [0, 2, 4] and report["warnings"]
    assert "no embedding" in " ".join(report["notes"])  # dt2: in the metadata, not embedded
    # no --distractors: the paper's counts, those above what exists replaced, loudly
    code, out, err = run_cli(*base, "--out", tmp_path / "c")
    assert code == 0 and "warning: distractor counts [10000, 100000, 1000000, 2000000]" in err
    assert json.loads((tmp_path / "c" / "report.json").read_text())["distractor_counts"] == [0, 4]


def test_bad_values_are_named(tmp_path, run_cli, capsys):
    root = layout("pyarrow-string", "hf", tmp_path)
    base = ("benchmark", "--data", root, "--embeddings", EMBEDDINGS, "--out", tmp_path / "o")
    code, _, err = run_cli(*base, "--lrvsf-indices", tmp_path / "missing.pt")
    assert code == 2 and f"--lrvsf-indices: {tmp_path / 'missing.pt'} is not a file" in err
    with pytest.raises(SystemExit):
        run_cli(*base, "--decode", "exif")
    err = capsys.readouterr().err
    assert "--decode: invalid choice: 'exif'" in err and "reference" in err
    code, _, err = run_cli("benchmark", "--data", tmp_path, "--embeddings", EMBEDDINGS)
    assert code == 2 and "no known dataset layout" in err


def test_parse_counts():
    assert parse_counts("0, 10K,2M,2000014") == [0, 10_000, 2_000_000, 2_000_014]
    with pytest.raises(UserError, match="not a count"):
        parse_counts("0,ten")
