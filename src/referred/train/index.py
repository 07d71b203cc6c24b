"""The training split as a map-style index: one streaming pass, then random access by offset.

:func:`build_pair_index` reads a split once through :mod:`referred.data` (any layout whose
products have image bytes or paths) and appends the encoded images of every product that has
a SIMPLE and a COMPLEX image to one packed file, ``images.bin``. The index keeps, per product,
its id, category, captions and the byte range of each image; per image 16 bytes (offset and
size). Memory for LRVS-F's ~270k training products: about 60 MB; disk: one copy of the
split's encoded images. A sample is then one ``os.pread`` per image, from any worker process,
so the data order is an exact function of ``(seed, epoch)``.

The folder is keyed by a fingerprint of the dataset files (path, size, mtime) and reused by
later and resumed runs; it is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from referred.categories import LRVSF_CATEGORIES
from referred.data import Dataset, ImageRecord, Product, ReadStats

log = logging.getLogger(__name__)

INDEX_VERSION = 1
IMAGES_FILE, INDEX_FILE, META_FILE = "images.bin", "index.npz", "meta.json"


class DataError(ValueError):
    """A dataset that cannot be trained on; the message says what is missing."""


@dataclass
class PairIndex:
    """Products with pairs, and where their encoded images are in ``images.bin``.

    Images of product ``i`` are rows ``image_start[i] .. image_start[i+1]``: its ``n_simple[i]``
    SIMPLE images first, then its COMPLEX / PARTIAL_COMPLEX ones.
    """

    folder: Path
    product_ids: list[str]
    categories: np.ndarray  # (P,) int16 LRVSF_CATEGORIES index, -1 unknown
    image_start: np.ndarray  # (P + 1,) int64
    n_simple: np.ndarray  # (P,) int32
    offsets: np.ndarray  # (I,) int64 byte offset in images.bin
    sizes: np.ndarray  # (I,) int64 byte size
    caption_start: np.ndarray  # (P + 1,) int64 into captions
    captions: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    _fd: int | None = field(default=None, repr=False)
    _pid: int = field(default=-1, repr=False)

    def __len__(self) -> int:
        return len(self.product_ids)

    def simple_rows(self, i: int) -> range:
        start = int(self.image_start[i])
        return range(start, start + int(self.n_simple[i]))

    def complex_rows(self, i: int) -> range:
        return range(int(self.image_start[i]) + int(self.n_simple[i]), int(self.image_start[i + 1]))

    def product_captions(self, i: int) -> list[str]:
        return self.captions[int(self.caption_start[i]) : int(self.caption_start[i + 1])]

    def read(self, row: int) -> bytes:
        """Encoded bytes of image ``row`` (one ``pread``; safe in forked workers)."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.folder / IMAGES_FILE, os.O_RDONLY)
            self._pid = os.getpid()
        return os.pread(self._fd, int(self.sizes[row]), int(self.offsets[row]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    # -- files ----------------------------------------------------------------------------
    def save(self) -> None:
        np.savez(
            self.folder / INDEX_FILE,
            categories=self.categories,
            image_start=self.image_start,
            n_simple=self.n_simple,
            offsets=self.offsets,
            sizes=self.sizes,
            caption_start=self.caption_start,
        )
        meta = {
            "version": INDEX_VERSION,
            "product_ids": self.product_ids,
            "captions": self.captions,
            "skipped": self.skipped,
        }
        (self.folder / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> PairIndex:
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("version") != INDEX_VERSION:
            raise DataError(f"{folder}: index version {meta.get('version')} != {INDEX_VERSION}")
        with np.load(folder / INDEX_FILE) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(
            folder,
            meta["product_ids"],
            captions=meta["captions"],
            skipped=meta["skipped"],
            **arrays,
        )


def fingerprint(dataset: Dataset, split: str) -> str:
    """A short hash of the dataset's files (relative path, size, mtime), layout and split."""
    h = hashlib.sha1(f"{INDEX_VERSION}|{dataset.layout}|{split}".encode())
    root = Path(dataset.root).resolve()
    h.update(str(root).encode())
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        st = p.stat()
        name = p.name if p == root else p.relative_to(root).as_posix()
        h.update(f"|{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _category(product: Product) -> int:
    return LRVSF_CATEGORIES.index(product.category) if product.category in LRVSF_CATEGORIES else -1


def _readable(records: tuple[ImageRecord, ...], skipped: Counter) -> Iterator[bytes]:
    for record in records:
        try:
            yield record.read_bytes()
        except FileNotFoundError:
            skipped["missing-image"] += 1
        except ValueError as exc:  # a metadata-only layout: no bytes at all
            raise DataError(str(exc)) from exc


def build_pair_index(dataset: Dataset, split: str, folder: Path) -> PairIndex:
    """Pack the images of ``split``'s products with pairs into ``folder`` (created whole).

    Products without a SIMPLE or a COMPLEX image are skipped and counted (``no-pair``), as are
    those the reader skipped (its problem kinds). Raises :class:`DataError` when no product
    has a pair.
    """
    stats, skipped = ReadStats(), Counter()
    # host and pid: nodes packing into one shared cache never write the same folder
    tmp = folder.with_name(f"{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ids, cats, starts, n_simple, offsets, sizes = [], [], [0], [], [], []
    cap_start, captions = [0], []
    with open(tmp / IMAGES_FILE, "wb") as out:
        for product in dataset.products(split, stats=stats):
            simple = list(_readable(product.simple, skipped))
            complex_ = list(_readable(product.complex, skipped))
            if not simple or not complex_:
                skipped["no-pair"] += 1
                continue
            for data in simple + complex_:
                offsets.append(out.tell())
                sizes.append(len(data))
                out.write(data)
            ids.append(product.product_id)
            cats.append(_category(product))
            starts.append(starts[-1] + len(simple) + len(complex_))
            n_simple.append(len(simple))
            captions.extend(product.captions)
            cap_start.append(len(captions))
    skipped.update(stats.problem_counts)
    if not ids:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{dataset.root}: no product of the {split!r} split has both a SIMPLE and a COMPLEX "
            f"image to train on ({stats.summary()}; skipped: {dict(skipped) or 'none'})"
        )
    index = PairIndex(
        tmp,
        ids,
        np.asarray(cats, np.int16),
        np.asarray(starts, np.int64),
        np.asarray(n_simple, np.int32),
        np.asarray(offsets, np.int64),
        np.asarray(sizes, np.int64),
        np.asarray(cap_start, np.int64),
        captions,
        dict(skipped),
    )
    index.save()
    try:
        os.replace(tmp, folder)
    except OSError:  # another node finished the same folder first (shared disk)
        shutil.rmtree(tmp, ignore_errors=True)
    return PairIndex.load(folder)


def load_or_build(dataset: Dataset, split: str, cache_dir: Path, build: bool) -> PairIndex | None:
    """The index of ``split`` under ``cache_dir``, built when missing if ``build`` is set.

    Returns ``None`` when it does not exist and ``build`` is false (another process builds it).
    """
    folder = cache_dir / f"{split}-{fingerprint(dataset, split)}"
    if (folder / META_FILE).is_file():
        return PairIndex.load(folder)
    if not build:
        return None
    log.info("packing the %s split of %s into %s (one pass)", split, dataset.root, folder)
    return build_pair_index(dataset, split, folder)
