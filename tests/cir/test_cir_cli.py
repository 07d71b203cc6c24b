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
