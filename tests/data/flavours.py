"""The committed metadata flavours (``scripts/make_metadata_flavours.py``) laid out as datasets.

Each flavour folder holds the three Hugging Face metadata files of one tiny test split,
written by one tool with one choice of physical types; :func:`layout` copies them where a
layout expects them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FLAVOURS = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "flavours"
MANIFEST: dict[str, dict] = json.loads((FLAVOURS / "manifest.json").read_text())
NAMES = sorted(MANIFEST)
EMBEDDINGS = FLAVOURS / "_embeddings"

SIMPLE, COMPLEX = "products_simple_metadata.parquet", "products_complex_metadata.parquet"
DISTRACTORS = "distractors_metadata.parquet"
#: Training-layout name of each file.
ROOT_NAMES = {SIMPLE: SIMPLE, COMPLEX: COMPLEX, DISTRACTORS: "distractors_test_metadata.parquet"}


def layout(flavour: str, kind: str, dest: Path) -> Path:
    """Lay ``flavour`` out under ``dest`` as ``kind`` and return the dataset root.

    ``"training"``: root metadata plus the image bytes under ``TEST/``;
    ``"metadata"``: the training layout's root metadata alone (no image anywhere);
    ``"hf"``: ``data/test/`` of the Hugging Face layout.
    """
    root = dest / f"{flavour}-{kind}"
    source = FLAVOURS / flavour
    if kind == "hf":
        (root / "data" / "test").mkdir(parents=True)
        for name in ROOT_NAMES:
            shutil.copy(source / name, root / "data" / "test" / name)
        return root
    if kind == "training":
        shutil.copytree(FLAVOURS / "_images", root)
    root.mkdir(parents=True, exist_ok=True)
    for name, target in ROOT_NAMES.items():
        shutil.copy(source / name, root / target)
    return root
