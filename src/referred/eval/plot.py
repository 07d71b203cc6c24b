"""Recall against the number of distractors, for one or several reports (matplotlib, Agg).

matplotlib is an optional dependency (``referred[eval]``), imported only when drawing; the
figure is built without pyplot, so no global backend or state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from referred.eval.report import Report, label, load_report


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
    """Draw ``metric`` (percent) against the distractor count (log x) and save a PNG.

    Each report gives a line through its full-set values and, where it was bootstrapped,
    mean ± std error bars. The 0-distractor point cannot sit on a log axis and is left out.

    Args:
        reports: report dicts or paths of ``report.json`` files.
        out_path: image path (the suffix picks the format).
        metric: report key, e.g. ``"R@1"``, ``"Cat@1"``, ``"filtered_R@1"``.
        labels: one legend label per report; default ``model (conditioning)``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'referred[eval]'") from exc
    loaded = [_as_report(r) for r in reports]
    if labels is not None and len(labels) != len(loaded):
        raise ValueError(f"{len(loaded)} reports but {len(labels)} labels")
    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, report in enumerate(loaded):
        name = labels[i] if labels is not None else label(report)
        full = sorted(
            (int(n), v[metric]) for n, v in report["full"].items() if int(n) > 0 and metric in v
        )
        line = None
        if full:
            (line,) = ax.plot(
                [n for n, _ in full], [100 * v for _, v in full], marker="o", label=name
            )
        boot = sorted(
            (int(n), v[metric])
            for n, v in report.get("bootstrap", {}).items()
            if int(n) > 0 and metric in v
        )
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
    ax.set_xscale("log")
    ax.set_xlabel("distractors")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"{metric} against the number of distractors")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
