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
        "--no-progress",
    ]
    args = parse(argv)
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "| m (category) |" in captured.out and "(none + category filter)" in captured.out
    assert "only 20 distractors available" in captured.err
    for name in ("report.json", "table.md", "model_card.yaml", "r1.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["distractor_counts"] == [0, 10, 20] and report["model"] == "m"

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


def test_parse_counts():
    assert parse_counts("0, 10K,2M,2000014") == [0, 10_000, 2_000_000, 2_000_014]
    with pytest.raises(UserError, match="not a count"):
        parse_counts("0,ten")
