"""``--task cir`` on the command line: what it needs and refuses is named; layering."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import referred
from referred.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "--task cir needs --model: the trained CondViT"),
        (["--model", "m", "--same-category", "4"], "does not take --same-category"),
        (["--model", "m", "--conditioning", "text", "--workers", "2"],
         "does not take --conditioning, --workers"),
    ],
)  # fmt: skip
def test_train_task_cir_names_what_it_needs_and_refuses(capsys, tmp_path, flags, message):
    code, text = _run(capsys, "train", "--task", "cir", "--data", str(tmp_path), "--out",
                      str(tmp_path / "o"), *flags)  # fmt: skip
    assert code == 2 and message in text


def test_benchmark_task_cir_needs_a_model_and_data(capsys, tmp_path):
    code, text = _run(capsys, "benchmark", "--task", "cir", "--data", str(tmp_path))
    assert code == 2 and "--task cir needs --model (a model folder" in text
    model = tmp_path / "m"
    referred.create_model("tiny", categories=("a",), seed=0).save_pretrained(model)
    code, text = _run(capsys, "benchmark", "--task", "cir", "--model", str(model))
    assert (
        code == 2 and "give --data (a FashionIQ-layout folder): the model has no Combiner" in text
    )
    code, text = _run(capsys, "benchmark", "--task", "cir", "--model", "m", "--data",
                      str(tmp_path), "--bootstrap", "1")  # fmt: skip
    assert code == 2 and "--bootstrap must be 0 (no std) or at least 2" in text


def test_search_modify_changes_one_item(capsys, tmp_path):
    code, text = _run(capsys, "search", "x.jpg", "--index", str(tmp_path), "--modify",
                      "in red", "--shop-the-look")  # fmt: skip
    assert code == 2 and "--modify changes one item" in text


PROBE = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted(m for m in set(sys.modules) - before)))
"""


def _loaded(module: str) -> set[str]:
    code = PROBE.replace("{module}", module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_layers():
    metric = _loaded("referred.eval.cir")
    assert not {m.split(".")[0] for m in metric} & {"torch", "pandas", "pyarrow", "PIL"}
    model = _loaded("referred.cir.io")  # what load_model pulls in for a Combiner
    assert not any(m.startswith(("referred.data", "referred.train", "referred.eval",
                                 "referred.search", "referred.web")) for m in model)  # fmt: skip


def _train_args(*flags):
    from referred.cli import build_parser

    return build_parser().parse_args(
        ["train", "--task", "cir", "--data", "d", "--out", "o", "--model", "m", *flags]
    )


def test_train_task_cir_flags_go_into_the_config():
    from referred.cli.train_cir import config_from_args
    from referred.train.cir_config import CIRTrainConfig

    config = config_from_args(
        _train_args("--hidden", "256", "--temperature", "0.03", "--dropout", "0.25",
                    "--weight-decay", "0.05", "--epochs", "7", "--lr", "1e-3")
    )  # fmt: skip
    assert (config.hidden, config.temperature, config.dropout, config.weight_decay) == (
        256, 0.03, 0.25, 0.05,
    )  # fmt: skip
    assert (config.epochs, config.lr) == (7, 1e-3)
    defaults = config_from_args(_train_args())  # not given: the config's own defaults
    plain = CIRTrainConfig(data="d", out="o", model="m")
    for name in ("hidden", "temperature", "dropout", "weight_decay", "epochs", "lr"):
        assert getattr(defaults, name) == getattr(plain, name)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hidden", "0"], "expected an integer >= 1, got 0"),
        (["--temperature", "-0.1"], "expected a number > 0"),
        (["--dropout", "1"], "expected a number in [0, 1), got 1"),
        (["--weight-decay", "x"], "expected a number >= 0, got 'x'"),
    ],
)
def test_train_task_cir_flags_are_checked(capsys, flags, message):
    with pytest.raises(SystemExit):
        _train_args(*flags)
    assert message in capsys.readouterr().err


def test_cir_flags_are_refused_by_the_other_tasks(capsys, tmp_path):
    code, text = _run(capsys, "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                      "--hidden", "64", "--temperature", "0.1")  # fmt: skip
    assert code == 2 and "--hidden, --temperature only apply to --task cir" in text


def test_train_help_names_the_combiner_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--hidden", "--temperature", "--dropout", "--weight-decay"):
        assert flag in text
