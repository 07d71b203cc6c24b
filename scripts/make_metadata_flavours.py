"""Write LRVS-F test-split metadata as real tools write it, under ``tests/fixtures/data/flavours/``.

Usage (each run adds the flavours its interpreter can write; commit the output)::

    python scripts/make_metadata_flavours.py                     # pyarrow + installed pandas/polars
    /tmp/pd2/bin/python scripts/make_metadata_flavours.py --writers pandas   # a pandas 2 venv

Every flavour holds the same catalogue (4 test products, 5 distractors) in the three
Hugging Face metadata files (``products_simple_metadata.parquet``,
``products_complex_metadata.parquet``, ``distractors_metadata.parquet``); only the physical
types differ: strings as ``string``, ``large_string`` or ``dictionary<int32, string>``, ids
as ``int64`` or strings, all-null columns, and the distractor frame's index labels stored as
a string, dictionary or integer column, a RangeIndex in the pandas metadata, or not at all
(pyarrow without pandas metadata, polars). Shared by all flavours: ``_images/TEST/`` (the
image bytes of the training layout) and ``_embeddings/`` (paper-era embeddings keyed by URL,
with distractor ``dt2`` left out). ``manifest.json`` records, per flavour, the writer and its
version, the arrow type of the id/index columns and the expected row labels; the tests check
the files against it. This script imports nothing from ``referred`` so that any venv runs it.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

URL = "https://example.com/flavour/{}.jpg"
# pid -> (category, [(image name, TYPE)]); c30x is one scene shared by two products
PRODUCTS = {
    301: ("Upper Body", [("s301", "SIMPLE"), ("c301", "COMPLEX")]),
    302: ("Lower Body", [("s302", "SIMPLE"), ("c302", "PARTIAL_COMPLEX"), ("c30x", "COMPLEX")]),
    303: ("Bags", [("s303", "SIMPLE"), ("c30x", "COMPLEX")]),
    304: ("Feet", [("s304", "SIMPLE"), ("c304", "PARTIAL_COMPLEX")]),
}
DISTRACTORS = [("dt0", "Outwear"), ("dt1", "Whole Body"), ("dt2", "Neck"), ("dt3", None)]
DISTRACTORS.append(("dt4", "Hands"))
NO_EMBEDDING = "dt2"  # its URL is absent from _embeddings/: it does not exist for --embeddings
STRING_LABELS = ["d10", "d3", "d7", "d0", "d1"]  # not sorted, not positions
INT_LABELS = [1000, 7, 42, 3, 99]
COLUMNS = [
    "URL", "WIDTH", "HEIGHT", "punsafe", "pwatermark", "language", "TEXT", "ENG_TEXT", "TYPE",
    "PRODUCT_ID", "INDEX_SRC", "SPLIT", "CATEGORY", "blip2_caption1", "blip2_caption2",
]  # fmt: skip
STRING_COLUMNS = ("URL", "language", "TEXT", "ENG_TEXT", "TYPE", "SPLIT", "CATEGORY")
STRING_COLUMNS += ("blip2_caption1", "blip2_caption2")
FILES = ("products_simple_metadata", "products_complex_metadata", "distractors_metadata")


def row(pid: int, category: str | None, name: str, kind: str, split: str) -> dict:
    simple = kind == "SIMPLE"
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
        "SPLIT": split,
        "CATEGORY": category if simple else None,
        "blip2_caption1": f"a {category} product" if simple and category else "a scene",
        "blip2_caption2": None,
    }


def tables() -> dict[str, list[dict]]:
    """The rows of the three files (Python values; each writer types them its way)."""
    simple, complex_ = [], []
    for pid, (category, images) in PRODUCTS.items():
        for name, kind in images:
            target = simple if kind == "SIMPLE" else complex_
            split = "test_gallery" if kind == "SIMPLE" else "test_query"
            target.append(row(pid, category, name, kind, split))
    dists = [row(900 + i, c, n, "SIMPLE", "test_gallery") for i, (n, c) in enumerate(DISTRACTORS)]
    return dict(zip(FILES, (simple, complex_, dists)))


# --- pyarrow: one physical type at a time -------------------------------------------------


def arrow_column(values: list, kind: str) -> pa.Array:
    """``values`` as ``kind``: ``string``, ``large_string``, ``dictionary`` (int32 indices)."""
    text = pa.array([None if v is None else str(v) for v in values], pa.string())
    if kind == "dictionary":
        return text.dictionary_encode().cast(pa.dictionary(pa.int32(), pa.string()))
    return text.cast(getattr(pa, kind)())


def pandas_metadata(index_col: str) -> dict[bytes, bytes]:
    """The part of pandas' ``pandas`` schema metadata that names the stored index column."""
    meta = {"index_columns": [index_col], "column_indexes": [], "columns": []}
    return {b"pandas": json.dumps(meta).encode()}


def write_pyarrow(out: Path, kind: str) -> dict:
    """Strings, ids and index labels as ``kind`` (``string``, ``large_string``, ``dictionary``,
    ``int64``: integer ids and labels); ``null``: null-typed columns and no index at all."""
    text = kind if kind in ("string", "large_string", "dictionary") else "string"
    labels: list = INT_LABELS if kind == "int64" else STRING_LABELS
    for name, rows in tables().items():
        nulls = ("punsafe", "blip2_caption2") + (("TYPE", "CATEGORY") if "complex" in name else ())
        cols = {}
        for col in COLUMNS:
            values = [r[col] for r in rows]
            if kind == "null" and col in nulls:
                cols[col] = pa.nulls(len(rows))
            elif col == "PRODUCT_ID" and kind in ("int64", "null"):
                cols[col] = pa.array(values, pa.int64())
            elif col in STRING_COLUMNS or col == "PRODUCT_ID":
                cols[col] = arrow_column(values, text)
            else:
                cols[col] = pa.array(values)
        meta = None
        if name == FILES[2] and kind != "null":
            index = pa.array(labels, pa.int64()) if kind == "int64" else arrow_column(labels, kind)
            cols["__index_level_0__"] = index
            meta = pandas_metadata("__index_level_0__")
        table = pa.table(cols)
        pq.write_table(table.replace_schema_metadata(meta), out / f"{name}.parquet")
    expected = list(range(len(DISTRACTORS))) if kind == "null" else labels
    return {"writer": f"pyarrow {pa.__version__}", "labels": [str(v) for v in expected]}


# --- pandas and polars: their own defaults, plus categoricals ---------------------------


def write_pandas(out: Path, style: str) -> dict:
    import pandas as pd

    frames = {name: pd.DataFrame(rows, columns=COLUMNS) for name, rows in tables().items()}
    dist = frames[FILES[2]]
    if style == "default":  # string labels, an all-None column, a categorical column
        dist.index = pd.Index(STRING_LABELS)
        labels = STRING_LABELS
        for frame in frames.values():
            frame["CATEGORY"] = frame["CATEGORY"].astype("category")
    elif style == "categorical":  # categorical index, ids, TYPE and SPLIT
        dist.index = pd.CategoricalIndex(STRING_LABELS)
        labels = STRING_LABELS
        for frame in frames.values():
            for col in ("TYPE", "SPLIT", "CATEGORY"):
                frame[col] = frame[col].astype("category")
            frame["PRODUCT_ID"] = frame["PRODUCT_ID"].astype(str).astype("category")
    else:  # a RangeIndex that is not 0..n-1 (stored in the metadata only); int64 elsewhere
        dist.index = pd.RangeIndex(10, 10 + 3 * len(dist), 3)
        labels = list(dist.index)
        frames[FILES[0]].index = frames[FILES[0]]["INDEX_SRC"].to_numpy()
    for name, frame in frames.items():
        frame.to_parquet(out / f"{name}.parquet")
    return {"writer": f"pandas {pd.__version__}", "labels": [str(v) for v in labels]}


def write_polars(out: Path, style: str) -> dict:
    import polars as pl

    for name, rows in tables().items():
        frame = pl.DataFrame(rows, schema_overrides={"blip2_caption2": pl.Utf8})
        if style == "categorical":
            frame = frame.with_columns(
                pl.col("TYPE", "CATEGORY").cast(pl.Categorical),
                pl.col("PRODUCT_ID").cast(pl.Utf8).cast(pl.Categorical),
            )
        frame.write_parquet(out / f"{name}.parquet")
    labels = [str(i) for i in range(len(DISTRACTORS))]  # no index: row positions
    return {"writer": f"polars {pl.__version__}", "labels": labels}


# --- shared: image bytes and embeddings ---------------------------------------------------


def jpeg(name: str) -> bytes:
    from PIL import Image

    seed = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)).save(
        buf, format="JPEG", quality=90
    )
    return buf.getvalue()


def write_shared(out: Path) -> None:
    names = list(dict.fromkeys(n for _, images in PRODUCTS.values() for n, _ in images))
    dists = [n for n, _ in DISTRACTORS]
    (out / "_images" / "TEST").mkdir(parents=True, exist_ok=True)
    for file, group in (("prods", names), ("dist_0", dists)):
        table = pa.table({"url": [URL.format(n) for n in group], "jpg": [jpeg(n) for n in group]})
        pq.write_table(table, out / "_images" / "TEST" / f"{file}.parquet")
    rng = np.random.default_rng(7)
    (out / "_embeddings").mkdir(exist_ok=True)
    for file, group in (("products_embs", names), ("dist_0", dists[::-1])):
        group = [n for n in group if n != NO_EMBEDDING]
        x = rng.standard_normal((len(group), 8)).astype(np.float32)
        emb = pa.array(list(x), type=pa.list_(pa.float32()))
        table = pa.table({"url": [URL.format(n) for n in group], "embeddings": emb})
        pq.write_table(table, out / "_embeddings" / f"{file}.parquet")


def id_types(folder: Path) -> dict[str, str]:
    """Arrow types of the columns the readers key on, per file (recorded in the manifest)."""
    out = {}
    for name in FILES:
        schema = pq.read_schema(folder / f"{name}.parquet")
        for col in ("PRODUCT_ID", "TYPE", "CATEGORY", "__index_level_0__", "blip2_caption2"):
            if col in schema.names:
                out[f"{name}.{col}"] = str(schema.field(col).type)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/data/flavours"))
    parser.add_argument("--writers", default="pyarrow,pandas,polars")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    jobs = {}
    writers = args.writers.split(",")
    if "pyarrow" in writers:
        write_shared(out)
        for kind in ("string", "large_string", "dictionary", "int64", "null"):
            jobs[f"pyarrow-{kind}"] = lambda d, k=kind: write_pyarrow(d, k)
    if "pandas" in writers:
        import pandas as pd

        major = pd.__version__.split(".")[0]
        for style in ("default", "categorical", "range"):
            jobs[f"pandas{major}-{style}"] = lambda d, s=style: write_pandas(d, s)
    if "polars" in writers:
        try:
            import polars  # noqa: F401
        except ImportError:
            print("polars not installed: its flavours are not rewritten")
        else:
            for style in ("default", "categorical"):
                jobs[f"polars-{style}"] = lambda d, s=style: write_polars(d, s)
    for name, job in jobs.items():
        folder = out / name
        folder.mkdir(exist_ok=True)
        entry = job(folder)
        entry["types"] = id_types(folder)
        manifest[name] = entry
        print(f"{name}: {entry['writer']}")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
