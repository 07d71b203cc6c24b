"""Benchmark outputs: ``report.json``, a Markdown table, a model-card YAML and a plot.

All functions take the report dict returned by :func:`referred.eval.benchmark.evaluate` (or
read back with :func:`load_report`). Recall and Cat values are fractions in the JSON and
percentages in the table and the card.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Report = dict[str, Any]
TABLE_METRICS: tuple[str, ...] = ("R@1", "R@5", "R@10", "Cat@1", "filtered_R@1")
SOURCES = ("auto", "full", "bootstrap", "lrvsf_benchmark")


def save_json(report: Report, path: str | Path) -> Path:
    """Write ``report`` as indented JSON (NaN refused: it is not JSON)."""
    path = Path(path)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_report(path: str | Path) -> Report:
    """Read a ``report.json``; checks that it has the ``full`` section."""
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(report, dict) or "full" not in report:
        raise ValueError(f"{path}: not a benchmark report (no 'full' section)")
    return report


def human_count(n: int) -> str:
    """10000 -> '10K', 2000014 -> '2M', 999999 -> '1M': 3 significant digits, then K/M/B/T
    (the leaderboard's short form)."""
    value = float(f"{n:.3g}")
    step = 0
    while abs(value) >= 1000 and step < 4:
        value /= 1000.0
        step += 1
    return f"{value:f}".rstrip("0").rstrip(".") + ("", "K", "M", "B", "T")[step]


def _entry(report: Report, n: int, metric: str, source: str) -> tuple[float, float | None] | None:
    """(value, std or None) of ``metric`` at ``n`` distractors from ``source``."""
    order = ("bootstrap", "full") if source == "auto" else (source,)
    for section in order:
        cell = report.get(section, {}).get(str(n), {}).get(metric)
        if cell is None:
            continue
        if isinstance(cell, dict):
            return cell["mean"], cell.get("std")
        return float(cell), None
    return None


def _counts(reports: Sequence[Report], source: str) -> list[int]:
    sections = ("bootstrap", "full") if source == "auto" else (source,)
    return sorted({int(n) for r in reports for s in sections for n in r.get(s, {})})


def label(report: Report) -> str:
    """Row label: ``model (conditioning)``."""
    model = report.get("model") or "model"
    return f"{model} ({report['conditioning']})" if report.get("conditioning") else model


def markdown_table(
    reports: Sequence[Report], metric: str = "R@1", source: str = "auto", digits: int = 1
) -> str:
    """The paper's table: one row per report, one column per distractor count, in percent.

    ``source="auto"`` shows the bootstrap mean ± std where the count was bootstrapped and the
    full-prefix value otherwise; ``"full"``, ``"bootstrap"`` or ``"lrvsf_benchmark"`` pick one.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    counts = _counts(reports, source)
    head = [metric] + [f"+{human_count(n)}" for n in counts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for report in reports:
        cells = [label(report)]
        for n in counts:
            entry = _entry(report, n, metric, source)
            if entry is None:
                cells.append("—")
            elif entry[1] is None:
                cells.append(f"{100 * entry[0]:.{digits}f}")
            else:
                cells.append(f"{100 * entry[0]:.{digits}f} ± {100 * entry[1]:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tables_markdown(reports: Sequence[Report], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown document with one table per metric (plus the LRVSF-Benchmark R@K)."""
    parts = [
        "# LRVS-F benchmark\n\n",
        "Percent. `a ± b`: mean ± std over bootstrap subsets; plain values: the first n "
        "distractors in metadata order (full set).\n",
    ]
    for m in metrics:
        if any(_entry(r, n, m, "auto") for r in reports for n in _counts([r], "auto")):
            parts += [f"\n## {m}\n\n", markdown_table(reports, m)]
    if any(r.get("lrvsf_benchmark") for r in reports):
        parts.append("\n## LRVSF-Benchmark protocol (R@K, mean ± std over folds)\n")
        for m in ("R@1", "R@5", "R@10", "R@20", "R@50"):
            parts += [f"\n### {m}\n\n", markdown_table(reports, m, "lrvsf_benchmark", 2)]
    return "".join(parts)


#: Fixed fields of the LRVSF-Benchmark model card (the leaderboard reads them).
CARD_DATASET = {
    "type": "Slep/LAION-RVS-Fashion",
    "name": "LAION - Referred Visual Search - Fashion",
    "split": "test",
}
CARD_SOURCE = {
    "name": "LRVSF Leaderboard",
    "url": "https://huggingface.co/spaces/Slep/LRVSF-Leaderboard",
}
CARD_RECALL_KS = (1, 5, 10, 20, 50)


def model_card(report: Report, name: str | None = None) -> dict[str, Any]:
    """The LRVSF-Benchmark model card of ``report`` as data, field for field the authors' one.

    ``tags: [lrvsf-benchmark]`` and a ``model-index`` with one result (task ``Retrieval``, the
    dataset, the metrics, the leaderboard as source). Metrics: for each LRVSF-Benchmark count
    D and K in 1, 5, 10, 20, 50, ``type: "recall_at_{K}|{D}"``, ``value: "93.44 ± 0.83"``
    (percent, mean ± std over the folds) and ``name: "R@{K} +10K Dist."``; then
    ``n_dists`` (the distractors the folds drew from), ``embedding_dim`` and
    ``conditioning``. Without the LRVSF-Benchmark section only those three are listed.
    """
    section = report.get("lrvsf_benchmark") or {}
    metrics: list[dict[str, Any]] = []
    for d in sorted(int(n) for n in section):
        for k in CARD_RECALL_KS:
            cell = section[str(d)].get(f"R@{k}")
            if cell is None:
                continue
            std = float("nan") if cell.get("std") is None else cell["std"]
            metrics.append(
                {
                    "type": f"recall_at_{k}|{d}",
                    "value": f"{100 * cell['mean']:.2f} ± {100 * std:.2f}",
                    "name": f"R@{k} +{human_count(d)} Dist.",
                }
            )
    lrvsf = (report.get("protocol") or {}).get("lrvsf") or {}
    n_dists = lrvsf.get("pool", max(report.get("distractor_counts") or [0]))
    metrics += [
        {"type": "n_dists", "name": "Available Dists.", "value": int(n_dists)},
        {
            "type": "embedding_dim",
            "name": "Embedding Dimension",
            "value": report.get("embedding_dim"),
        },
        {"type": "conditioning", "name": "Conditioning", "value": report.get("conditioning")},
    ]
    result = {
        "task": {"type": "Retrieval"},
        "dataset": dict(CARD_DATASET),
        "metrics": metrics,
        "source": dict(CARD_SOURCE),
    }
    model = name or report.get("model") or "model"
    return {"tags": ["lrvsf-benchmark"], "model-index": [{"name": model, "results": [result]}]}


def _yaml_lines(value: Any, indent: str) -> list[str]:
    """Block YAML of dicts (keys sorted, as ``yaml.dump`` writes them), lists and scalars;
    strings JSON-quoted (valid YAML), sequences not indented under their key."""
    lines: list[str] = []
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{indent}{key}:")
                lines += _yaml_lines(item, indent + ("  " if isinstance(item, dict) else ""))
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return lines
    for item in value:
        sub = _yaml_lines(item, indent + "  ") if isinstance(item, (dict, list)) else []
        if sub:
            lines.append(f"{indent}- {sub[0].lstrip()}")
            lines += sub[1:]
        else:
            lines.append(f"{indent}- {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False)


def model_card_yaml(report: Report, name: str | None = None) -> str:
    """:func:`model_card` as YAML text (``model_card.yaml``)."""
    return "\n".join(_yaml_lines(model_card(report, name), "")) + "\n"


def write_report(
    report: Report, out_dir: str | Path, *, name: str | None = None, plot: bool = True
) -> dict[str, Path]:
    """Write ``report.json``, ``table.md``, ``model_card.yaml`` and ``r1.png`` into ``out_dir``.

    Returns the written paths by kind. The plot is skipped (with a warning) when matplotlib is
    not installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": save_json(report, out / "report.json")}
    paths["table"] = out / "table.md"
    paths["table"].write_text(tables_markdown([report]), encoding="utf-8")
    paths["card"] = out / "model_card.yaml"
    paths["card"].write_text(model_card_yaml(report, name), encoding="utf-8")
    if plot:
        from referred.eval.plot import plot_reports

        try:
            paths["plot"] = plot_reports([report], out / "r1.png")
        except ImportError as exc:
            log.warning("no plot written: %s", exc)
    return paths
