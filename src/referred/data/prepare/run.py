"""``referred data prepare``: Hugging Face metadata + img2dataset images → training layout.

Steps: (1) collect the URLs the metadata wants; (2) stage the fetched images (one scan, see
:mod:`referred.data.prepare.staging`); (3) stream each split's products and distractors,
keep what has images, and write the layout unit by unit (see
:mod:`referred.data.prepare.build`); (4) copy the test distractor metadata and a
safely-loaded ``bootstrap_IDs.pkl``; (5) remove outputs of an earlier, larger run.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from referred.data.assemble import is_missing
from referred.data.bootstrap import load_bootstrap_ids
from referred.data.files import (
    atomic_output,
    iter_parquet_batches,
    open_parquet,
    require_column,
    url_keys,
)
from referred.data.hf import COMPLEX_FILE, DISTRACTOR_FILE, SIMPLE_FILE, HFMetadataDataset
from referred.data.prepare.build import (
    MANIFEST_FILE,
    Manifest,
    Planned,
    SplitCounts,
    UnitLog,
    batched,
    emit_unit,
    keep_distractor,
    keep_images,
)
from referred.data.prepare.staging import SCAN_FILE, StagedImages, stage_images
from referred.data.records import DataFileError, ReadStats
from referred.data.training_layout import (
    BOOTSTRAP_FILE,
    PRODS_PARQUET,
    PRODS_TAR,
    ROOT_COMPLEX,
    ROOT_DISTRACTORS,
    ROOT_SIMPLE,
    TEST_DIR,
    TRAIN_DIR,
    VALID_DIR,
)
from referred.data.writer import MetadataWriter

log = logging.getLogger(__name__)

STAGING_DIR = ".prepare"


@dataclass(frozen=True)
class PrepareConfig:
    """Inputs, output and sizes of a ``prepare`` run.

    ``hf_root``: the Hugging Face metadata folder (with ``data/``); ``images``: the
    img2dataset output folder; ``out``: the training-layout root to build. ``shard_size``
    products per ``TRAIN`` tar, ``dist_shard_size`` distractors per distractor file.
    ``verify`` decodes every image once (corrupt ones are dropped and counted).
    """

    hf_root: Path
    images: Path
    out: Path
    shard_size: int = 1000
    dist_shard_size: int = 10_000
    verify: bool = True

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.dist_shard_size < 1:
            raise ValueError(
                f"shard sizes must be >= 1, got {self.shard_size} and {self.dist_shard_size}"
            )


@dataclass
class PrepareReport:
    """Counts per split, units written/skipped, and the problems met on the way."""

    out: Path
    products: dict[str, SplitCounts] = field(default_factory=dict)
    distractors: dict[str, SplitCounts] = field(default_factory=dict)
    units: UnitLog = field(default_factory=UnitLog)
    stats: ReadStats = field(default_factory=ReadStats)

    def summary_lines(self) -> list[str]:
        """One line per split, then the output files."""
        lines = [f"{s} products: {c.line('products')}" for s, c in self.products.items()]
        lines += [f"{s} distractors: {c.line('distractors')}" for s, c in self.distractors.items()]
        lines.append(
            f"output {self.out}: {len(self.units.written)} files written, "
            f"{len(self.units.skipped)} already complete"
        )
        return lines


def wanted_urls(hf: HFMetadataDataset) -> Iterator[str]:
    """Every URL of the metadata: products of all splits, then distractors."""
    files = [
        hf.root / "data" / d / n
        for d in ("train", "validation", "test")
        for n in (SIMPLE_FILE, COMPLEX_FILE, DISTRACTOR_FILE)
    ]
    for path in files:
        if not path.is_file():
            continue
        column = require_column(open_parquet(path).schema_arrow.names, ["URL"], "URL", path)
        for batch in iter_parquet_batches(path, columns=[column], batch_size=65536):
            yield from (str(u) for u in batch.column(0).to_pylist() if u is not None)


def _metadata_schema(hf: HFMetadataDataset, name: str) -> pa.Schema:
    for split in hf.splits:
        path = hf.root / "data" / ("validation" if split == "valid" else split) / name
        if path.is_file():
            schema = open_parquet(path).schema_arrow.remove_metadata()
            keep = [f for f in schema if f.name != "__index_level_0__"]
            return pa.schema(keep)
    raise DataFileError(f"{hf.root}: no {name} in any split")


def _products(
    hf: HFMetadataDataset,
    split: str,
    staged: StagedImages,
    counts: SplitCounts,
    stats: ReadStats,
    metas: tuple[MetadataWriter, MetadataWriter],
) -> Iterator[Planned]:
    for product in hf.products(split, stats=stats):
        planned = keep_images(product, staged, counts)
        if planned is None:
            continue
        types = {im.url: im.type for im in product.images}
        for url, meta in planned[1]:
            if is_missing(meta.get("TYPE")):
                meta["TYPE"] = types[url].value
            metas[1 if types[url].is_complex else 0].add(meta)
        yield planned


def _unit_name(split: str, k: int, distractors: bool) -> str:
    if distractors:
        return f"{VALID_DIR}/dist_{k}.tar" if split == "valid" else f"{TEST_DIR}/dist_{k}.parquet"
    if split == "train":
        return f"{TRAIN_DIR}/{k:05d}.tar"
    return f"{VALID_DIR}/{PRODS_TAR}" if split == "valid" else f"{TEST_DIR}/{PRODS_PARQUET}"


def _copy_checked(src: Path, dst: Path, stats: ReadStats, check_pickle: bool = False) -> None:
    if not src.is_file():
        return
    if check_pickle:
        try:
            load_bootstrap_ids(src)
        except DataFileError as exc:
            stats.error("unreadable-file", src.name, None, f"{exc}; not copied")
            return
    with atomic_output(dst, keep_identical=True) as tmp:
        shutil.copyfile(src, tmp)


def _remove_stale(out: Path, units: UnitLog, manifest: Manifest) -> None:
    patterns = (f"{TRAIN_DIR}/*.tar", f"{VALID_DIR}/*.tar", f"{TEST_DIR}/*.parquet")
    for pattern in patterns:
        for path in out.glob(pattern):
            name = path.relative_to(out).as_posix()
            if name not in units.names:
                log.info("removing %s (not part of this run)", name)
                path.unlink()
                manifest.units.pop(name, None)
    manifest.save()


@dataclass
class _Run:
    """What every unit of one run needs."""

    out: Path
    staged: StagedImages
    fingerprint: str
    manifest: Manifest
    report: PrepareReport

    def emit(self, name: str, planned: list[Planned]) -> None:
        emit_unit(
            self.out, name, planned, self.staged, self.fingerprint, self.manifest, self.report.units
        )


def _write_products(run: _Run, hf: HFMetadataDataset, config: PrepareConfig) -> None:
    schemas = [_metadata_schema(hf, n) for n in (SIMPLE_FILE, COMPLEX_FILE)]
    with (
        MetadataWriter(run.out / ROOT_SIMPLE, schemas[0], keep_identical=True) as simple_meta,
        MetadataWriter(run.out / ROOT_COMPLEX, schemas[1], keep_identical=True) as complex_meta,
    ):
        for split in hf.splits:
            counts = run.report.products[split] = SplitCounts()
            metas = (simple_meta, complex_meta)
            planned = _products(hf, split, run.staged, counts, run.report.stats, metas)
            size = config.shard_size if split == "train" else None
            for k, batch in enumerate(batched(planned, size)):
                run.emit(_unit_name(split, k, False), batch)


def _write_distractors(run: _Run, hf: HFMetadataDataset, config: PrepareConfig) -> None:
    for split in hf.distractor_splits:
        counts = run.report.distractors[split] = SplitCounts()
        found = hf.distractors(split, stats=run.report.stats)
        kept = (p for p in (keep_distractor(d, run.staged, counts) for d in found) if p)
        for k, batch in enumerate(batched(kept, config.dist_shard_size)):
            run.emit(_unit_name(split, k, True), batch)


def prepare_dataset(config: PrepareConfig) -> PrepareReport:
    """Build the training layout under ``config.out``; resumable and idempotent."""
    hf = HFMetadataDataset(config.hf_root)
    if not hf.splits:
        raise DataFileError(
            f"{config.hf_root}: not a Hugging Face metadata folder; expected "
            f"data/{{train,validation,test}}/{SIMPLE_FILE}"
        )
    out, report = Path(config.out), PrepareReport(Path(config.out))
    staging = out / STAGING_DIR
    wanted = np.unique(url_keys(wanted_urls(hf)))
    staged = stage_images(config.images, staging, wanted, verify=config.verify, stats=report.stats)
    manifest = Manifest.load(staging / MANIFEST_FILE)
    run = _Run(out, staged, (staging / SCAN_FILE).read_text(), manifest, report)
    try:
        _write_products(run, hf, config)
        _write_distractors(run, hf, config)
    finally:
        staged.close()
    _copy_checked(hf.root / "data" / "test" / DISTRACTOR_FILE, out / ROOT_DISTRACTORS, report.stats)
    _copy_checked(hf.root / BOOTSTRAP_FILE, out / BOOTSTRAP_FILE, report.stats, check_pickle=True)
    _remove_stale(out, report.units, manifest)
    return report
