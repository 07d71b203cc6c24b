"""scripts/bench_gpu.py runs its logic on the CPU (``--quick``), so the GPU check cannot rot
between the rare sessions that have a GPU; and ``python -m referred`` is the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_quick_on_the_cpu_reports_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/bench_gpu.py"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["environment"]["device"] == "cpu"
    encoder = result["encoder"]
    assert {(r["model"], r["dtype"]) for r in encoder} >= {
        ("reference (CLIP-style)", "fp32"),
        ("referred CondViT", "fp32"),
        ("referred CondViT", "bf16 autocast"),
    }
    for r in encoder:
        assert r["images_per_s"] > 0
        if r["dtype"] == "fp32":
            assert r["rel_error_vs_reference_fp32"] < 1e-4
    assert [r["model"] for r in result["train"]] == [
        "referred CondViT",
        "reference (nn.MultiheadAttention)",
    ]
    fp16 = [r for r in result["flat"] if "float16" in r["engine"]]
    assert fp16 and all(0.9 <= r["recall@10_vs_fp32"] <= 1.0 for r in fp16)


def test_python_dash_m_referred_is_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "referred", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "search" in done.stdout
