"""Tell which layout a folder (or file) is, and open it with the matching reader."""

from __future__ import annotations

from pathlib import Path

from referred.data.base import Dataset
from referred.data.catalog import IMAGE_SUFFIXES, TABLE_SUFFIXES, CatalogDataset, has_images
from referred.data.hf import HF_SPLIT_DIRS, SIMPLE_FILE, HFMetadataDataset
from referred.data.training_layout import (
    PRODS_PARQUET,
    PRODS_TAR,
    ROOT_SIMPLE,
    TEST_DIR,
    TRAIN_DIR,
    VALID_DIR,
    TrainingLayoutDataset,
)
from referred.data.zenodo import PRODUCTS_FILE, ZenodoDataset, is_zenodo_products

READERS: dict[str, type[Dataset]] = {
    "training": TrainingLayoutDataset,
    "hf": HFMetadataDataset,
    "zenodo": ZenodoDataset,
    "catalog": CatalogDataset,
}

EXPECTED = (
    f"training layout ({TRAIN_DIR}/*.tar, {VALID_DIR}/{PRODS_TAR}, {TEST_DIR}/{PRODS_PARQUET} "
    f"or {ROOT_SIMPLE}); Hugging Face metadata (data/{{train,validation,test}}/{SIMPLE_FILE}); "
    f"Zenodo test set ({PRODUCTS_FILE} with SIMPLE_IMG and COMPLEX_IMG columns); catalog "
    f"(a folder of images ({', '.join(sorted(IMAGE_SUFFIXES))}) or a .parquet/.csv table)"
)


def detect_layout(root: Path) -> str:
    """The layout name of ``root``: ``"training"``, ``"hf"``, ``"zenodo"`` or ``"catalog"``.

    Checked in that order. Raises ``FileNotFoundError`` for a missing path and ``ValueError``
    naming the expected layouts when none matches.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset not found: {root}")
    if root.is_file():
        if root.suffix.lower() in TABLE_SUFFIXES:
            return "catalog"
        raise ValueError(f"{root}: not a dataset; a file must be a .parquet or .csv catalog")
    if any((root / d).is_dir() for d in (TRAIN_DIR, VALID_DIR, TEST_DIR)):
        return "training"
    if (root / ROOT_SIMPLE).is_file():
        return "training"
    if any((root / "data" / d / SIMPLE_FILE).is_file() for d in HF_SPLIT_DIRS.values()):
        return "hf"
    if (root / PRODUCTS_FILE).is_file() and is_zenodo_products(root / PRODUCTS_FILE):
        return "zenodo"
    if has_images(root):
        return "catalog"
    raise ValueError(f"{root}: no known dataset layout found; expected one of: {EXPECTED}")


def open_dataset(root: Path, layout: str | None = None) -> Dataset:
    """Open ``root`` with the reader of ``layout`` (detected when ``None``)."""
    name = detect_layout(root) if layout is None else layout
    if name not in READERS:
        raise ValueError(f"unknown layout {layout!r}; expected one of: {', '.join(READERS)}")
    return READERS[name](Path(root))
