"""Recall against the number of distractors, for one or several reports (matplotlib, Agg).

matplotlib is an optional dependency (``referred[eval]``), imported only when drawing; the
figure is built without pyplot, so no global backend or state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from referred.eval.report import Report, human_count, label, load_report


def _as_report(r: Report | str | Path) -> Report:
    return r if isinstance(r, dict) else load_report(r)


def plot_reports(
    reports: Sequence[Report | str | Path],
    out_path: str | Path,
    *,
    metric: str = "R@1",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``metric`` (percent) against the distractor count and save the figure.

    Each report gives a line through its full-set values and, where it was bootstrapped,
    mean ± std error bars. The x axis is symmetric-log: linear from 0 to the smallest
    positive count, logarithmic beyond, so the +0 point is drawn with the others; ticks sit
    at the counts, in short form (``10K``). The legend goes under the axes, off the lines.

    Args:
        reports: report dicts or paths of ``report.json`` files.
        out_path: image path (the suffix picks the format).
        metric: report key, e.g. ``"R@1"``, ``"Cat@1"``, ``"filtered_R@1"``.
        labels: one legend label per report; default ``model (conditioning)``.
    """
    fig = recall_figure(reports, metric=metric, labels=labels, title=title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def recall_figure(
    reports: Sequence[Report | str | Path],
    *,
    metric: str = "R@1",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """The ``matplotlib.figure.Figure`` that :func:`plot_reports` saves."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'referred[eval]'") from exc
    loaded = [_as_report(r) for r in reports]
    if labels is not None and len(labels) != len(loaded):
        raise ValueError(f"{len(loaded)} reports but {len(labels)} labels")
    fig = Figure(figsize=(6.4, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    counts: set[int] = set()
    for i, report in enumerate(loaded):
        name = labels[i] if labels is not None else label(report)
        full = _points(report.get("full", {}), metric)
        boot = _points(report.get("bootstrap", {}), metric)
        counts.update(n for n, _ in full + boot)
        line = None
        if full:
            xs, ys = zip(*full)
            (line,) = ax.plot(xs, [100 * v for v in ys], marker="o", label=name)
        if boot:
            ax.errorbar(
                [n for n, _ in boot],
                [100 * c["mean"] for _, c in boot],
                yerr=[100 * (c.get("std") or 0.0) for _, c in boot],
                fmt="s",
                capsize=3,
                color=line.get_color() if line is not None else None,
                label=f"{name}, bootstrap",
            )
    positive = sorted(n for n in counts if n > 0)
    ax.set_xscale("symlog", linthresh=positive[0] if positive else 1, linscale=0.5)
    if counts:
        ticks = sorted(counts)
        ax.set_xticks(ticks, [human_count(n) for n in ticks])
        ax.minorticks_off()
    ax.set_xlabel("distractors")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"{metric} against the number of distractors")
    handles, names = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=min(2, len(handles)))
    return fig


def _points(section: dict, metric: str) -> list[tuple[int, Any]]:
    """``(count, value)`` of ``metric`` in a report section, by count (0 included)."""
    return sorted((int(n), v[metric]) for n, v in section.items() if metric in v)
