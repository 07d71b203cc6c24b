"""Export a training-layout folder's metadata in the Hugging Face layout (the inverse of prepare).

Useful to publish a synthetic dataset the way LAION-RVS-Fashion is published, and to test
``prepare`` end to end without the network: export the metadata, serve the images as an
img2dataset output, prepare, compare.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from referred.data.assemble import is_missing
from referred.data.files import atomic_output, iter_parquet_batches, open_parquet
from referred.data.hf import COMPLEX_FILE, DISTRACTOR_FILE, HF_SPLIT_DIRS, SIMPLE_FILE
from referred.data.records import ReadStats
from referred.data.training_layout import (
    BOOTSTRAP_FILE,
    ROOT_COMPLEX,
    ROOT_DISTRACTORS,
    ROOT_SIMPLE,
    TrainingLayoutDataset,
)
from referred.data.writer import HF_SCHEMA, MetadataWriter

#: SPLIT value prefix → canonical split.
_SPLIT_OF = {"train": "train", "val": "valid", "test": "test"}


def _split_of(value: object) -> str | None:
    if is_missing(value):
        return None
    for prefix, split in _SPLIT_OF.items():
        if str(value).startswith(prefix):
            return split
    return None


def _export_products(src: Path, dst: Path, name: str, target: str) -> None:
    path = src / name
    schema = open_parquet(path).schema_arrow
    with contextlib.ExitStack() as stack:
        writers = {
            split: stack.enter_context(MetadataWriter(dst / "data" / folder / target, schema))
            for split, folder in HF_SPLIT_DIRS.items()
        }
        for batch in iter_parquet_batches(path, batch_size=65536):
            for row in batch.to_pylist():
                split = _split_of(row.get("SPLIT"))
                if split is not None:
                    writers[split].add(row)


def export_hf_metadata(src: Path, dst: Path) -> None:
    """Write ``dst/data/{train,validation,test}/…`` from the training layout at ``src``.

    Product rows are routed by their ``SPLIT``; test distractors come from the root
    ``distractors_test_metadata.parquet``, validation ones from the ``VALID/dist_*.tar`` json.
    """
    src, dst = Path(src), Path(dst)
    _export_products(src, dst, ROOT_SIMPLE, SIMPLE_FILE)
    _export_products(src, dst, ROOT_COMPLEX, COMPLEX_FILE)
    if (src / ROOT_DISTRACTORS).is_file():
        target = dst / "data" / HF_SPLIT_DIRS["test"] / DISTRACTOR_FILE
        with atomic_output(target) as tmp:
            shutil.copyfile(src / ROOT_DISTRACTORS, tmp)
    ds = TrainingLayoutDataset(src)
    if "valid" in ds.distractor_splits:
        target = dst / "data" / HF_SPLIT_DIRS["valid"] / DISTRACTOR_FILE
        with MetadataWriter(target, HF_SCHEMA) as writer:
            for distractor in ds.distractors("valid", stats=ReadStats()):
                writer.add(distractor.image.meta)
    if (src / BOOTSTRAP_FILE).is_file():
        with atomic_output(dst / BOOTSTRAP_FILE) as tmp:
            shutil.copyfile(src / BOOTSTRAP_FILE, tmp)
