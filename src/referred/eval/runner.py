"""The benchmark runner: a model (or precomputed embeddings) and a dataset in, report files out.

:func:`run_benchmark` reads the test split of any layout :func:`referred.data.open_dataset`
knows, embeds queries (complex image + condition), targets (simple image) and distractors
(unconditioned) into the resumable cache (:mod:`referred.catalog.cache`) under
``out_dir/embeddings/``, ranks them with :func:`referred.eval.evaluate` (distractors streamed
from the cache's parts), optionally adds the
unconditional and category-filter baselines, and writes ``report.json``, ``table.md``,
``model_card.yaml`` and ``r1.png``. ``referred benchmark`` is a thin layer over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from referred.eval.benchmark import EvalConfig, evaluate
from referred.eval.bootstrap import load_lrvsf_folds
from referred.eval.encode import Benchmarkable
from referred.eval.inputs import (
    SKIPPED_PRODUCTS,
    Progress,
    model_inputs,
    open_dataset_like,
    parquet_inputs,
)
from referred.eval.plot import plot_reports
from referred.eval.report import Report, save_json, tables_markdown, write_report
from referred.imageio import check_decode

log = logging.getLogger(__name__)

DEFAULT_COUNTS: tuple[int, ...] = (0, 10_000, 100_000, 1_000_000, 2_000_000)
CONDITIONINGS = ("category", "text", "none")


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` produced: the main report, the baseline reports (same
    shape), the written files, the notes (skipped products, distractors without embedding,
    ...) and the warnings (results that are not what was asked for, e.g. fewer distractors)."""

    report: Report
    baselines: list[Report] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def table(self) -> str:
        return tables_markdown([self.report, *self.baselines])


class NotEnoughDistractorsError(ValueError):
    """A distractor count above the distractors that exist, without leave to serve fewer."""


def serve_counts(
    counts: Sequence[int], available: int, exhausted: bool, allow_fewer: bool = False
) -> tuple[list[int], str | None]:
    """The counts this run serves, and a warning when some were replaced.

    A count above ``available`` (known exactly once ``exhausted``) raises
    :class:`NotEnoughDistractorsError` naming what exists, unless ``allow_fewer``: then such
    counts are replaced by ``available`` and the returned warning says so.
    """
    wanted = sorted({int(c) for c in counts})
    if any(c < 0 for c in wanted):
        raise ValueError(f"distractor counts must be >= 0, got {wanted}")
    over = [c for c in wanted if c > available] if exhausted else []
    if not over:
        return wanted, None
    text = f"distractor counts {over} cannot be served: only {available} distractors exist"
    if not allow_fewer:
        kept = [c for c in wanted if c <= available]
        raise NotEnoughDistractorsError(
            f"{text}; ask for at most {available} (e.g. distractor counts "
            f"{','.join(str(c) for c in sorted({*kept, available}))}), or allow fewer "
            f"(--allow-fewer-distractors) to use all {available} in their place"
        )
    kept = sorted({*(c for c in wanted if c <= available), available})
    return kept, f"{text}; counts {over} replaced by {available} (fewer distractors allowed)"


def usable_bootstrap(
    boot: Mapping[str, Sequence[np.ndarray]], product_ids: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, list[np.ndarray]] | None, list[str]]:
    """The part of a ``bootstrap_IDs.pkl`` dict this run can serve: subsets whose products are
    all benchmarked and whose distractor labels are all in the streamed prefix."""
    notes = []
    pids = np.asarray(product_ids).astype(str)
    tests = [np.asarray(s) for s in boot.get("test_subsets", [])]
    if not tests:
        return None, ["bootstrap_IDs.pkl has no test_subsets: paper protocol skipped"]
    missing = {str(x) for s in tests for x in s.astype(str)} - set(pids.tolist())
    if missing:
        notes.append(
            f"paper bootstrap skipped: {len(missing)} PRODUCT_IDs of test_subsets are not among "
            f"the benchmarked products (first: {sorted(missing)[:3]})"
        )
        return None, notes
    out: dict[str, list[np.ndarray]] = {"test_subsets": tests}
    known = np.asarray(labels).astype(str)
    for key, subsets in boot.items():
        if key == "test_subsets":
            continue
        arrays = [np.asarray(s) for s in subsets]
        if all(np.isin(a.astype(str), known).all() for a in arrays):
            out[key] = arrays
        else:
            notes.append(f"paper bootstrap {key} skipped: it draws distractors not streamed here")
    return out, notes


def filter_report(report: Report, name: str) -> Report:
    """The "+ Filt." row: R@K replaced by filtered R@K (gallery and distractors restricted to
    the target's category), for every section."""

    def section(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for n, metrics in entries.items():
            out[n] = {
                m[len("filtered_") :]: v for m, v in metrics.items() if m.startswith("filtered_")
            }
            if "median_rank" in metrics:
                out[n]["median_rank"] = None
        return {n: {k: v for k, v in m.items() if v is not None} for n, m in out.items()}

    derived = {k: v for k, v in report.items() if k not in ("full", "bootstrap", "lrvsf_benchmark")}
    derived.update(
        conditioning=name,
        full=section(report["full"]),
        bootstrap=section(report.get("bootstrap", {})),
        lrvsf_benchmark=section(report.get("lrvsf_benchmark", {})),
    )
    return derived


def resolve_conditioning(model: Any, requested: str | None, notes: list[str]) -> str:
    """The conditioning queries get: the request, checked against what the model accepts."""
    if requested is not None and requested not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {requested!r}; expected one of {CONDITIONINGS}")
    config = getattr(model, "config", None)
    native = getattr(config, "conditioning", None)
    if native == "none":
        if requested not in (None, "none"):
            notes.append(
                f"the model has no conditioning: queries embedded unconditioned "
                f"(conditioning {requested!r} ignored)"
            )
        return "none"
    if requested == "text" and native == "category" and getattr(config, "cond_dim", 0) is None:
        raise ValueError(
            "this model is conditioned on categories only; use conditioning "
            "'category' (or 'none' for unconditioned queries)"
        )
    return requested or native or "category"


def _load_bootstrap(bootstrap: Any, ds: Any, notes: list[str]) -> Mapping | None:
    from referred.data import load_bootstrap_ids

    if bootstrap is None or isinstance(bootstrap, Mapping):
        return bootstrap
    path = Path(ds.root) / "bootstrap_IDs.pkl" if bootstrap == "auto" else Path(bootstrap)
    if bootstrap == "auto" and not path.is_file():
        notes.append("no bootstrap_IDs.pkl: paper bootstrap skipped")
        return None
    return load_bootstrap_ids(path)


def _load_folds(lrvsf_indices: Any, notes: list[str]) -> np.ndarray | None:
    if lrvsf_indices is None:
        return None
    if any(SKIPPED_PRODUCTS in n for n in notes):
        raise ValueError(
            "the LRVSF fold indices refer to the test products by row, but some test products "
            "were skipped (see the notes), so the rows would not line up; fix the data first"
        )
    if isinstance(lrvsf_indices, (str, Path)):
        return load_lrvsf_folds(lrvsf_indices)
    return np.asarray(lrvsf_indices, dtype=np.int64)


def run_benchmark(
    model: Benchmarkable | None,
    data: Any,
    *,
    out_dir: str | Path,
    distractor_counts: Sequence[int] = DEFAULT_COUNTS,
    allow_fewer_distractors: bool = False,
    conditioning: str | None = None,
    embeddings: str | Path | None = None,
    baselines: bool = False,
    bootstrap: Any = "auto",
    seed: int | None = 0,
    lrvsf_indices: str | Path | np.ndarray | None = None,
    decode: str = "default",
    batch_size: int = 32,
    shard_size: int = 4096,
    model_name: str | None = None,
    config: EvalConfig | None = None,
    progress: bool = False,
    write: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> BenchmarkResult:
    """Benchmark ``model`` on the test split of ``data``; write the report files to ``out_dir``.

    Args:
        model: anything with ``encode_queries(images, conds)`` / ``encode_targets(images)``
            returning L2-normalised ``(n, d)`` arrays or tensors (images are PIL images;
            conds are category names, captions, or ``None`` for unconditioned queries).
            ``None`` with ``embeddings``.
        data: a dataset folder (any layout of :func:`referred.data.open_dataset`) or a
            :class:`referred.data.Dataset`.
        out_dir: report files, and the embedding cache under ``out_dir/embeddings/``.
        distractor_counts: prefix sizes. A count above the distractors that exist raises
            :class:`NotEnoughDistractorsError` naming how many exist, unless
            ``allow_fewer_distractors``: then it is replaced by that number, with a warning
            (``result.warnings`` and ``report["warnings"]``).
        conditioning: ``"category"``, ``"text"`` or ``"none"``; default: the model's own
            (``model.config.conditioning``), else ``"category"``.
        embeddings: a folder of paper-era parquet embeddings (``products_embs.parquet``,
            ``dist*.parquet``) to use instead of a model; the test split then comes from the
            metadata files alone and the distractors that exist are those with an embedding.
        baselines: also report the unconditional queries and their category-filter row.
        bootstrap: ``"auto"`` (``bootstrap_IDs.pkl`` at the dataset root when present), a
            path, a loaded dict, or ``None``.
        seed: seed of the LRVSF-Benchmark draws; ``None`` skips that protocol.
        lrvsf_indices: the official ``bootstrapped_indices.pt`` (or its ``(folds, size)``
            array): the products of each LRVSF-Benchmark fold, by row of the test products
            in the dataset's order (the Zenodo ``products.parquet`` rows); ``None``: drawn.
        decode: image decoding, ``"default"`` (EXIF rotation, alpha over white) or
            ``"reference"`` (the authors' plain ``convert("RGB")``, for parity with their
            numbers); see :mod:`referred.imageio`.
        batch_size, shard_size: images per model call; items per cached part.
        model_name: name in the report (default: the class name).
        config: metric cut-offs and ranking settings.
        progress: show progress bars (stderr).
        write: write ``report.json``, ``table.md``, ``model_card.yaml`` and ``r1.png``.
        engine: ``"local"`` (embed here) or ``"ray"``: the same encode function runs in Ray
            tasks on ``ray_address`` (a local Ray with 2 CPUs when None), at most ``workers``
            at a time (default: the cluster's CPUs), giving the same vectors and cache
            (:class:`referred.catalog.ray_embed.RayEncoders`). Ray starts only when something
            is left to embed.
    """
    if model is None and embeddings is None:
        raise ValueError("give a model or a folder of precomputed embeddings")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    check_decode(decode)
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; expected 'local' or 'ray'")
    ds, out, notes = open_dataset_like(data), Path(out_dir), []
    cfg = config or EvalConfig()
    cond = (
        resolve_conditioning(model, conditioning, notes)
        if model is not None
        else (conditioning or "category")
    )
    want = max((int(c) for c in distractor_counts), default=0)
    t0 = time.perf_counter()
    if embeddings is not None:
        inputs = parquet_inputs(Path(embeddings), ds, want, notes)
        if decode != "default":
            notes.append(f"decode {decode!r} has no effect on precomputed embeddings")
    else:
        remote = _remote(engine, model, ray_address, workers, batch_size)
        try:
            inputs = model_inputs(
                model, ds, cond, want, out, batch_size, shard_size, progress, notes, decode, remote
            )
            if remote is not None and baselines and cond != "none":
                plain = inputs.baseline_queries()  # embedded now, while Ray is up
                inputs.baseline_queries = lambda: plain
        finally:
            if remote is not None:
                remote.close()
    t_embed = time.perf_counter() - t0
    warnings: list[str] = []
    counts, warning = serve_counts(
        distractor_counts, inputs.available, inputs.exhausted, allow_fewer_distractors
    )
    warnings += [warning] if warning else []
    folds = _load_folds(lrvsf_indices, notes)
    n_stream = max(counts, default=0)
    labels = inputs.labels[:n_stream]
    boot = _load_bootstrap(bootstrap, ds, notes)
    if boot is not None:
        boot, more = usable_bootstrap(boot, inputs.products.keys, labels)
        notes += more
    name = model_name or ("embeddings" if model is None else type(model).__name__)

    def rank(queries: np.ndarray, c: str, rcfg: EvalConfig) -> Report:
        bar = Progress(progress, "rank", n_stream, "dist")
        try:
            return evaluate(
                queries,
                inputs.targets,
                inputs.products.categories,
                inputs.distractors(n_stream),
                counts,
                bootstrap=boot,
                product_ids=inputs.products.keys,
                distractor_labels=labels,
                lrvsf_seed=seed if folds is None or seed is not None else 0,
                lrvsf_folds=folds,
                model=name,
                conditioning=c,
                config=rcfg,
                progress=bar.to,
            )
        finally:
            bar.close()

    wide = replace(cfg, filtered_ks=tuple(sorted({*cfg.filtered_ks, *cfg.recall_ks})))
    t1 = time.perf_counter()
    report = rank(inputs.queries, cond, wide if baselines and cond == "none" else cfg)
    extra: list[Report] = []
    if baselines and inputs.baseline_queries is None:
        notes.append("baselines need a model: skipped with precomputed embeddings")
    elif baselines:
        base = report if cond == "none" else rank(inputs.baseline_queries(), "none", wide)
        extra = ([] if cond == "none" else [base]) + [filter_report(base, "none + category filter")]
    report.update(
        notes=notes,
        warnings=warnings,
        decode=decode,
        data={
            "root": str(ds.root),
            "layout": ds.layout,
            "available_distractors": inputs.available if inputs.exhausted else None,
        },
        timing={"embed_s": round(t_embed, 3), "rank_s": round(time.perf_counter() - t1, 3)},
    )
    if extra:
        report["baselines"] = extra
    result = BenchmarkResult(report, extra, notes=notes, warnings=warnings)
    if write:
        result.paths = _write(result, out)
    return result


def _remote(
    engine: str, model: Any, address: str | None, workers: int | None, batch_size: int
) -> Any:
    """The Ray encoders of ``engine="ray"`` (the address checked at once), else None."""
    if engine != "ray":
        return None
    from referred.catalog.ray_embed import RayEncoders, check_reachable

    if address:
        check_reachable(address)
    return RayEncoders(model, address=address, workers=workers, chunk=batch_size)


def _write(result: BenchmarkResult, out: Path) -> dict[str, Path]:
    paths = write_report(result.report, out, name=result.report.get("model"))
    text = result.table
    if result.warnings:
        text += "\n## Warnings\n\n" + "".join(f"- {w}\n" for w in result.warnings)
    if result.notes:
        text += "\n## Notes\n\n" + "".join(f"- {n}\n" for n in result.notes)
    paths["table"].write_text(text, encoding="utf-8")
    if result.baselines and "plot" in paths:
        plot_reports([result.report, *result.baselines], paths["plot"])
    for base in result.baselines:  # standalone copies, for `referred benchmark plot`
        slug = "filter" if "filter" in str(base["conditioning"]) else "unconditional"
        paths[f"baseline_{slug}"] = save_json(base, out / f"report_baseline_{slug}.json")
    return paths
