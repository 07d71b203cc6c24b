"""Report files: report.json shape, Markdown table, valid model-card YAML, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from referred.eval.benchmark import EvalConfig, evaluate
from referred.eval.plot import plot_reports, recall_figure
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


def authors_card(name, recalls, n_dists, dim, conditioning):
    """The card as the authors' ``make_yaml`` builds it (LRVSF-Benchmark, read 2026-11-26):
    ``recalls`` maps D to (means, stds) over K = 1, 5, 10, 20, 50, as fractions."""
    short = {100: "100", 400: "400", 10_000: "10K", 500_000: "500K", 1_000_000: "1M"}
    metrics = [
        {
            "type": f"recall_at_{k}|{d}",
            "value": f"{means[i] * 100:.2f} ± {stds[i] * 100:.2f}",
            "name": f"R@{k} +{short[d]} Dist.",
        }
        for d, (means, stds) in recalls.items()
        for i, k in enumerate((1, 5, 10, 20, 50))
    ]
    metrics += [
        {"type": "n_dists", "name": "Available Dists.", "value": n_dists},
        {"type": "embedding_dim", "name": "Embedding Dimension", "value": dim},
        {"type": "conditioning", "name": "Conditioning", "value": conditioning},
    ]
    result = {
        "task": {"type": "Retrieval"},
        "dataset": {
            "type": "Slep/LAION-RVS-Fashion",
            "name": "LAION - Referred Visual Search - Fashion",
            "split": "test",
        },
        "metrics": metrics,
        "source": {
            "name": "LRVSF Leaderboard",
            "url": "https://huggingface.co/spaces/Slep/LRVSF-Leaderboard",
        },
    }
    return {"tags": ["lrvsf-benchmark"], "model-index": [{"name": name, "results": [result]}]}


def test_model_card_matches_the_authors_make_yaml(report):
    yaml = pytest.importorskip("yaml")
    text = model_card_yaml(report, name='Model "with: quotes"')
    ks = ("R@1", "R@5", "R@10", "R@20", "R@50")
    section = report["lrvsf_benchmark"]
    recalls = {
        d: ([section[str(d)][k]["mean"] for k in ks], [section[str(d)][k]["std"] for k in ks])
        for d in (100, 400)
    }
    expected = authors_card('Model "with: quotes"', recalls, 500, 16, "category")
    assert yaml.safe_load(text) == expected
    assert text.startswith("model-index:\n") and text.endswith('tags:\n- "lrvsf-benchmark"\n')
    # Without the LRVSF-Benchmark section: no recall, the three facts only.
    bare = yaml.safe_load(model_card_yaml(dict(report, lrvsf_benchmark={})))
    metrics = bare["model-index"][0]["results"][0]["metrics"]
    assert [m["type"] for m in metrics] == ["n_dists", "embedding_dim", "conditioning"]


def test_model_card_names_counts_in_short_form():
    yaml = pytest.importorskip("yaml")
    cell = {"mean": 0.9344, "std": 0.0083, "n": 20}
    counts = (10_000, 500_000, 1_000_000)
    report = {
        "model": "Slep/CondViT-B16-cat",
        "conditioning": "text",
        "embedding_dim": 512,
        "protocol": {"lrvsf": {"pool": 2_000_014}},
        "lrvsf_benchmark": {str(d): {f"R@{k}": cell for k in (1, 5, 10, 20, 50)} for d in counts},
    }
    recalls = {d: ([0.9344] * 5, [0.0083] * 5) for d in counts}
    expected = authors_card("Slep/CondViT-B16-cat", recalls, 2_000_014, 512, "text")
    assert yaml.safe_load(model_card_yaml(report)) == expected
    assert '"93.44 ± 0.83"' in model_card_yaml(report)


def test_r1_plot_draws_the_zero_point_and_keeps_the_legend_off_the_axes(report):
    pytest.importorskip("matplotlib")
    other = dict(report, model="ViT-B/16", conditioning="none")
    fig = recall_figure([report, other])
    fig.canvas.draw()
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0, 10, 100, 500]  # +0 is drawn
    assert ax.get_xscale() == "symlog"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "10", "100", "500"]
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert not legend.overlaps(axes)
    assert fig.legends[0].get_texts()[0].get_text() == "CondViT-B/16 (category)"


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
