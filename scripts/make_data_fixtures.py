"""Write the small data fixtures under ``tests/fixtures/data/`` (deterministic; commit them).

Usage: ``python scripts/make_data_fixtures.py [--out tests/fixtures/data]``

Every layout holds the same tiny catalogue (7 products, 4 distractors, 8x8 JPEGs whose
colour encodes the image), so tests can assert exact records:

- ``training/``: the training-code layout, clean;
- ``training_corrupt/``: the same with a truncated JPEG (product 102), a product without its
  simple image (103), an unknown category (106) and a tar cut short (``TRAIN/00002.tar``,
  product 105 lost after 104);
- ``hf/``: the Hugging Face metadata layout, rows deliberately out of ``PRODUCT_ID`` order and
  product 104 without any complex image;
- ``zenodo/``: the Zenodo test set;
- ``catalog/``: a folder of images, and ``catalog.csv`` pointing at them.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from referred.data.bootstrap import save_bootstrap_ids
from referred.data.tario import TarShardWriter
from referred.data.writer import (
    HF_SCHEMA,
    MetadataWriter,
    UrlBytesWriter,
    write_distractor_sample,
    write_product_sample,
)

URL = "https://example.com/img/{}.jpg"

# pid → (split, category, [(image name, TYPE)])
PRODUCTS: dict[int, tuple[str, str, list[tuple[str, str]]]] = {
    101: ("train", "Bags", [("s101", "SIMPLE"), ("c101", "COMPLEX")]),
    102: (
        "train",
        "Feet",
        [("s102", "SIMPLE"), ("c102a", "COMPLEX"), ("c102b", "PARTIAL_COMPLEX")],
    ),
    103: ("train", "Head", [("s103", "SIMPLE"), ("c103", "COMPLEX")]),
    201: ("valid", "Neck", [("s201", "SIMPLE"), ("c201", "COMPLEX")]),
    202: ("valid", "Waist", [("s202", "SIMPLE"), ("c202", "COMPLEX")]),
    301: ("test", "Upper Body", [("s301", "SIMPLE"), ("c30x", "COMPLEX")]),
    302: ("test", "Lower Body", [("s302", "SIMPLE"), ("c30x", "COMPLEX")]),
}
# extra train products of the corrupt variant / the HF variant
EXTRA: dict[int, tuple[str, str, list[tuple[str, str]]]] = {
    104: ("train", "Hands", [("s104", "SIMPLE"), ("c104", "COMPLEX")]),
    105: ("train", "Neck", [("s105", "SIMPLE"), ("c105", "COMPLEX")]),
    106: ("train", "Socks", [("s106", "SIMPLE"), ("c106", "COMPLEX")]),
}
DISTRACTORS = {
    "valid": [("dv0", "Bags"), ("dv1", "Hands")],
    "test": [("dt0", "Outwear"), ("dt1", "Whole Body")],
}
SPLIT_LABELS = {
    "train": ("train", "train"),
    "valid": ("val_gallery", "val_query"),
    "test": ("test_gallery", "test_query"),
}


def jpeg(name: str) -> bytes:
    """An 8x8 JPEG whose colour is derived from ``name`` (stable across runs)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def row(pid: int, split: str, category: str, name: str, kind: str) -> dict:
    """A metadata row in the Hugging Face columns."""
    gallery, query = SPLIT_LABELS[split]
    simple = kind == "SIMPLE"
    caption = f"a product of category {category.lower()}" if simple else "a person in a scene"
    return {
        "URL": URL.format(name),
        "WIDTH": 8,
        "HEIGHT": 8,
        "punsafe": 0.01,
        "pwatermark": 0.1,
        "language": "en",
        "TEXT": f"item {pid}",
        "ENG_TEXT": f"item {pid}",
        "TYPE": kind,
        "PRODUCT_ID": pid,
        "INDEX_SRC": pid * 10,
        "SPLIT": gallery if simple else query,
        "CATEGORY": category if simple else None,
        "blip2_caption1": caption,
        "blip2_caption2": None,
    }


def distractor_row(split: str, name: str, category: str, index: int) -> dict:
    """Metadata of one distractor."""
    return row(900 + index, split, category, name, "SIMPLE")


def write_metadata(path: Path, rows: Iterable[dict], row_group: int = 65536) -> None:
    with MetadataWriter(path, HF_SCHEMA, rows_per_group=row_group) as writer:
        for r in rows:
            writer.add(r)


def product_images(pid: int, table: dict) -> list[tuple[bytes, dict]]:
    split, category, images = table[pid]
    return [(jpeg(name), row(pid, split, category, name, kind)) for name, kind in images]


def cut_inside(path: Path, member: str) -> None:
    """Truncate the tar at ``path`` in the middle of ``member``'s data."""
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    data = path.read_bytes()
    path.write_bytes(data[: info.offset_data + info.size // 2])


def write_training(out: Path, corrupt: bool) -> None:
    table = {**PRODUCTS, **EXTRA} if corrupt else PRODUCTS
    shards = [[101, 102], [103, 106], [104, 105]] if corrupt else [[101, 102], [103]]
    for k, pids in enumerate(shards):
        with TarShardWriter(out / "TRAIN" / f"{k:05d}.tar") as tar:
            for pid in pids:
                images = product_images(pid, table)
                if corrupt and pid == 102:
                    images[1] = (images[1][0][: len(images[1][0]) // 2], images[1][1])
                if corrupt and pid == 103:
                    images = images[1:]  # the simple image is lost
                write_product_sample(tar, str(pid), images)
    if corrupt:
        cut_inside(out / "TRAIN" / "00002.tar", "105.0.jpg")
    with TarShardWriter(out / "VALID" / "prods.tar") as tar:
        for pid in (201, 202):
            write_product_sample(tar, str(pid), product_images(pid, table))
    with TarShardWriter(out / "VALID" / "dist_0.tar") as tar:
        for i, (name, category) in enumerate(DISTRACTORS["valid"]):
            write_distractor_sample(
                tar, str(i), jpeg(name), distractor_row("valid", name, category, i)
            )
    with UrlBytesWriter(out / "TEST" / "prods.parquet") as writer:
        for pid in (301, 302):
            for data, meta in product_images(pid, table):
                writer.add(meta["URL"], data)
    with UrlBytesWriter(out / "TEST" / "dist_0.parquet") as writer:
        for name, _ in DISTRACTORS["test"]:
            writer.add(URL.format(name), jpeg(name))
    rows = [r for pid in sorted(table) for _, r in product_images(pid, table)]
    write_metadata(
        out / "products_simple_metadata.parquet", [r for r in rows if r["TYPE"] == "SIMPLE"]
    )
    write_metadata(
        out / "products_complex_metadata.parquet", [r for r in rows if r["TYPE"] != "SIMPLE"]
    )
    write_metadata(
        out / "distractors_test_metadata.parquet",
        [distractor_row("test", n, c, i) for i, (n, c) in enumerate(DISTRACTORS["test"])],
    )
    save_bootstrap_ids(
        out / "bootstrap_IDs.pkl",
        {
            "test_subsets": [np.array([301, 302, 302]), np.array([301, 301, 302])],
            "dist_2_subsets": [np.array([0, 1]), np.array([1, 1])],
        },
    )


def write_hf(out: Path) -> None:
    table = {**PRODUCTS, 104: EXTRA[104]}
    folders = {"train": "train", "valid": "validation", "test": "test"}
    for split, folder in folders.items():
        pids = [p for p in table if table[p][0] == split][::-1]  # reversed: not sorted
        rows = [r for pid in pids for _, r in product_images(pid, table)]
        simple = [r for r in rows if r["TYPE"] == "SIMPLE"]
        complex_ = [r for r in rows if r["TYPE"] != "SIMPLE" and r["PRODUCT_ID"] != 104]
        base = out / "data" / folder
        write_metadata(base / "products_simple_metadata.parquet", simple, row_group=2)
        write_metadata(base / "products_complex_metadata.parquet", complex_[::-1], row_group=2)
        if split in DISTRACTORS:
            dists = [distractor_row(split, n, c, i) for i, (n, c) in enumerate(DISTRACTORS[split])]
            write_metadata(base / "distractors_metadata.parquet", dists)


def write_zenodo(out: Path) -> None:
    pids = (301, 302, 201)
    table = pa.table(
        {
            "SIMPLE_IMG": [jpeg(f"s{p}") for p in pids],
            "COMPLEX_IMG": [jpeg(f"c{p}") for p in pids],
            "CATEGORY": [PRODUCTS[p][1] for p in pids],
            "blip2_caption1": [f"a caption of {p}" for p in pids],
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "products.parquet")
    (out / "distractors").mkdir(exist_ok=True)
    dists = pa.table({"jpg": [jpeg("dt0"), jpeg("dt1")]})
    pq.write_table(dists, out / "distractors" / "dist_0.parquet")


def write_catalog(out: Path) -> None:
    files = {"Bags/tote.jpg": "tote", "Lower_Body/skirts/red.jpg": "red", "misc/thing.jpg": "thing"}
    for rel, name in files.items():
        path = out / "catalog" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg(name))
    (out / "catalog.csv").write_text(
        "SKU,Title,Category,image_path\n"
        "A1,Red tote bag,bags,catalog/Bags/tote.jpg\n"
        "A2,Red skirt,Lower Body,catalog/Lower_Body/skirts/red.jpg\n"
        "A3,Mystery item,Gadgets,catalog/misc/thing.jpg\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/data"))
    args = parser.parse_args()
    out: Path = args.out
    for name in ("training", "training_corrupt", "hf", "zenodo", "catalog"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "catalog.csv").unlink(missing_ok=True)
    write_training(out / "training", corrupt=False)
    write_training(out / "training_corrupt", corrupt=True)
    write_hf(out / "hf")
    write_zenodo(out / "zenodo")
    write_catalog(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote fixtures under {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
