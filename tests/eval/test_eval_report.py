"""Report files: report.json shape, Markdown table, valid model-card YAML, plots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from referred.eval.benchmark import EvalConfig, evaluate
from referred.eval.plot import plot_reports
from referred.eval.report import (
    human_count,
    load_report,
    markdown_table,
    model_card_yaml,
    write_report,
)
from referred.eval.sources import array_blocks
from tests.eval.synth import realistic_bench

METRICS = [
    "R@1", "R@5", "R@10", "R@20", "R@50", "Cat@1", "Cat@5", "Cat@10",
    "filtered_R@1", "filtered_R@5", "filtered_R@10", "median_rank",
]  # fmt: skip


@pytest.fixture(scope="module")
def report():
    b = realistic_bench(n=40, n_d=500)
    pids = np.arange(40) + 100
    rng = np.random.default_rng(0)
    boot = {
        "test_subsets": [rng.choice(pids, 30) for _ in range(4)],
        "dist_100_subsets": [rng.integers(0, 500, 100) for _ in range(4)],
    }
    return evaluate(
        b.queries, b.gallery, b.gallery_categories,
        array_blocks(b.distractors, b.distractor_categories, 128), [0, 10, 100, 500],
        bootstrap=boot, product_ids=pids, lrvsf_seed=0,
        model="CondViT-B/16", conditioning="category",
        config=EvalConfig(lrvsf_counts=(100, 400), lrvsf_folds=3, lrvsf_fold_size=20),
    )  # fmt: skip


def test_report_json_shape(report, tmp_path):
    paths = write_report(report, tmp_path)
    data = load_report(paths["json"])
    assert data == json.loads(json.dumps(report))
    assert list(data["full"]) == ["0", "10", "100", "500"]
    for n, entry in data["full"].items():
        assert list(entry) == METRICS, n
        assert all(0 <= v <= 1 for k, v in entry.items() if k != "median_rank")
        assert entry["median_rank"] >= 1
    assert list(data["bootstrap"]) == ["0", "100"]
    assert set(data["bootstrap"]["100"]["R@1"]) == {"mean", "std", "n"}
    assert "Cat@1" not in data["bootstrap"]["100"]  # Cat@K: full set only (see docs)
    assert list(data["lrvsf_benchmark"]) == ["100", "400"]
    assert data["model"] == "CondViT-B/16" and data["conditioning"] == "category"
    assert data["embedding_dim"] == 16
    # Recall grows with K and falls as distractors are added.
    full = data["full"]
    assert full["500"]["R@1"] <= full["500"]["R@10"] <= full["500"]["R@50"]
    assert full["500"]["R@1"] <= full["0"]["R@1"]


def test_markdown_table(report):
    other = dict(report, model="ViT-B/16", conditioning=None, bootstrap={})
    table = markdown_table([report, other])
    lines = table.strip().splitlines()
    assert lines[0] == "| R@1 | +0 | +10 | +100 | +500 |"
    assert lines[2].startswith("| CondViT-B/16 (category) | ")
    assert " ± " in lines[2] and " ± " not in lines[3]
    r1 = 100 * report["full"]["500"]["R@1"]
    assert lines[2].endswith(f"| {r1:.1f} |")
    assert human_count(10_000) == "10K" and human_count(2_000_014) == "2M"
    assert human_count(500) == "500" and human_count(1_500_000) == "1.5M"


def test_model_card_is_valid_yaml(report, tmp_path):
    yaml = pytest.importorskip("yaml")
    text = model_card_yaml(report, name='Model "with: quotes"')
    card = yaml.safe_load(text)
    entry = card["model-index"][0]
    assert entry["name"] == 'Model "with: quotes"'
    found = entry["results"][0]["metrics"]
    assert {m["type"] for m in found} == {
        f"recall_at_{k}|{d}" for k in (1, 5, 10, 20, 50) for d in (100, 400)
    }
    assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", m["value"]) for m in found)
    want = 100 * report["lrvsf_benchmark"]["100"]["R@1"]["mean"]
    value = next(m["value"] for m in found if m["type"] == "recall_at_1|100")
    assert value.startswith(f"{want:.2f} ± ")
    assert card["n_dists"] == [100, 400]
    assert card["embedding_dim"] == 16 and card["conditioning"] == "category"
    # Without bootstraps, the full-set values (no ±) are used.
    bare = yaml.safe_load(model_card_yaml(dict(report, lrvsf_benchmark={}, bootstrap={})))
    values = [m["value"] for m in bare["model-index"][0]["results"][0]["metrics"]]
    assert all(re.fullmatch(r"\d+\.\d\d", v) for v in values)
    assert bare["n_dists"] == [10, 100, 500]


def test_plots_written(report, tmp_path):
    paths = write_report(report, tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "report.json", "table.md", "model_card.yaml", "r1.png",
    }  # fmt: skip
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = dict(report, model="other")
    (tmp_path / "b.json").write_text(json.dumps(other))
    out = plot_reports([paths["json"], tmp_path / "b.json"], tmp_path / "cmp.png", metric="Cat@1")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="labels"):
        plot_reports([report], tmp_path / "x.png", labels=["a", "b"])
