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
    """10000 -> '10K', 2000014 -> '2M' (rounded to 3 significant digits)."""
    for div, suffix in ((1_000_000, "M"), (1_000, "K")):
        if n >= div:
            return f"{float(f'{n / div:.3g}'):g}{suffix}"
    return str(n)


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


def _q(value: Any) -> str:
    """A YAML scalar: JSON's double-quoted strings and numbers are valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def model_card_yaml(report: Report, name: str | None = None, source: str = "auto") -> str:
    """LRVSF-Benchmark model-card metadata (``model-index``) as YAML text.

    Metric ``type`` is ``recall_at_{K}|{D}`` and ``value`` the percentage with 2 decimals,
    ``"93.44 ± 0.83"`` when a std is known. ``source="auto"`` uses the LRVSF-Benchmark folds
    when present, then the paper bootstrap, then the full set (counts > 0 only).
    """
    if source == "auto":
        source = next((s for s in ("lrvsf_benchmark", "bootstrap") if report.get(s)), "full")
    section = report.get(source) or {}
    counts = sorted(int(n) for n in section if int(n) > 0)
    lines = [
        "model-index:",
        f"  - name: {_q(name or report.get('model') or 'model')}",
        "    results:",
        "      - task:",
        f"          type: {_q('image-retrieval')}",
        f"          name: {_q('Referred Visual Search')}",
        "        dataset:",
        f"          type: {_q('Slep/LAION-RVS-Fashion')}",
        f"          name: {_q('LAION-RVS-Fashion')}",
        f"          split: {_q('test')}",
        "        metrics:",
    ]
    for d in counts:
        recalls = sorted(int(m[2:]) for m in section[str(d)] if m.startswith("R@"))
        for k in recalls:
            value, std = _entry(report, d, f"R@{k}", source) or (float("nan"), None)
            text = f"{100 * value:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")
            lines += [
                f"          - type: {_q(f'recall_at_{k}|{d}')}",
                f"            value: {_q(text)}",
                f"            name: {_q(f'R@{k} +{human_count(d)} distractors')}",
            ]
    lines += [
        f"n_dists: [{', '.join(str(d) for d in counts)}]",
        f"embedding_dim: {_q(report.get('embedding_dim'))}",
        f"conditioning: {_q(report.get('conditioning'))}",
        f"protocol: {_q(source)}",
    ]
    return "\n".join(lines) + "\n"


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
