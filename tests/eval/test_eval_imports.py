"""Layering by import weight: ``referred.eval.metrics`` needs numpy only, ``referred.index``
needs no torch. Each import runs in a fresh interpreter that lists the top-level packages it
loaded beyond those the interpreter starts with."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
before = {m.split(".")[0] for m in sys.modules}
import {module}
after = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(after - before - set(sys.stdlib_module_names))))
"""


def loaded_by(module: str) -> set[str]:
    code = PROBE.replace("{module}", module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_metrics_need_numpy_only():
    assert loaded_by("referred.eval.metrics") <= {"numpy", "referred"}


@pytest.mark.parametrize("module", ["referred.eval.ranking", "referred.eval.bootstrap"])
def test_ranking_and_protocols_need_no_arrow_or_torch(module):
    assert not loaded_by(module) & {"torch", "pyarrow", "pandas", "matplotlib", "PIL"}


def test_index_needs_no_torch():
    loaded = loaded_by("referred.index")
    assert "referred" in loaded and "torch" not in loaded


def test_probe_sees_heavy_imports():
    """The probe itself works: the parquet embedding reader does pull pyarrow in."""
    assert "pyarrow" in loaded_by("referred.eval.embeddings")
