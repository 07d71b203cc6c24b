"""Build the training-code layout from Hugging Face metadata plus staged images.

Products stream out of the metadata reader in ``PRODUCT_ID`` order; each image is looked up
in the staging by URL; a product keeps its available images and is dropped when it has no
SIMPLE or no COMPLEX image left. Kept products fill *units* (``TRAIN/00000.tar`` … of
``shard_size`` products, ``VALID/prods.tar``, ``TEST/prods.parquet``; distractors fill
``VALID/dist_{k}.tar`` and ``TEST/dist_{k}.parquet``). A unit is written atomically, and its
digest (planned content + staging fingerprint) is recorded in ``manifest.json``; a unit whose
file exists with the recorded digest is skipped, so an interrupted run resumes and a repeated
run writes nothing. Root metadata is rewritten only when its bytes change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from referred.data.files import atomic_output
from referred.data.prepare.staging import StagedImages
from referred.data.records import Distractor, Product
from referred.data.tario import TarShardWriter
from referred.data.writer import (
    UrlBytesWriter,
    encode_json,
    write_distractor_sample,
    write_product_sample,
)

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"

# A planned sample: (id, [(url, metadata row), ...])
Planned = tuple[str, list[tuple[str, dict[str, Any]]]]


@dataclass
class SplitCounts:
    """What happened to one split's products (or distractors) and their images."""

    kept: int = 0
    dropped_no_simple: int = 0
    dropped_no_complex: int = 0
    images_kept: int = 0
    images_missing: int = 0
    images_corrupt: int = 0

    def line(self, what: str) -> str:
        """A one-line summary."""
        drops = (
            f", dropped {self.dropped_no_simple} without simple / "
            f"{self.dropped_no_complex} without complex image"
            if what == "products"
            else ""
        )
        return (
            f"{self.kept} {what} kept{drops}; images: {self.images_kept} kept, "
            f"{self.images_missing} missing, {self.images_corrupt} corrupt"
        )


@dataclass
class Manifest:
    """Digests of the units already written, persisted after each unit."""

    path: Path
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read ``path`` (an absent or unreadable manifest is empty)."""
        try:
            units = json.loads(path.read_text())["units"]
        except (OSError, ValueError, KeyError, TypeError):
            units = {}
        return cls(path, dict(units))

    def done(self, name: str, digest: str, out: Path) -> bool:
        """Whether unit ``name`` exists with this digest."""
        return self.units.get(name) == digest and (out / name).is_file()

    def record(self, name: str, digest: str) -> None:
        """Mark ``name`` complete and save the manifest atomically."""
        self.units[name] = digest
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps({"units": self.units}, indent=1, sort_keys=True))


def unit_digest(fingerprint: str, planned: list[Planned]) -> str:
    """Digest of what a unit will contain (ids, URLs, metadata) and of the staged sources."""
    h = hashlib.sha256(fingerprint.encode())
    for key, images in planned:
        h.update(f"\n{key}".encode())
        for url, meta in images:
            h.update(b"\0" + url.encode() + b"\0" + encode_json(meta))
    return h.hexdigest()


def keep_images(product: Product, staged: StagedImages, counts: SplitCounts) -> Planned | None:
    """The product's available images, or ``None`` (counted) when it loses a side."""
    kept: list[tuple[str, dict[str, Any]]] = []
    sides = {"simple": 0, "complex": 0}
    for image in product.images:
        status = staged.status(image.url) if image.url else "missing"
        if status == "ok":
            kept.append((str(image.url), dict(image.meta)))
            sides["complex" if image.type.is_complex else "simple"] += 1
        elif status == "corrupt":
            counts.images_corrupt += 1
        else:
            counts.images_missing += 1
    if not sides["simple"]:
        counts.dropped_no_simple += 1
        return None
    if not sides["complex"]:
        counts.dropped_no_complex += 1
        return None
    counts.kept += 1
    counts.images_kept += len(kept)
    return product.product_id, kept


def keep_distractor(d: Distractor, staged: StagedImages, counts: SplitCounts) -> Planned | None:
    """A distractor whose image is staged, or ``None`` (counted as missing or corrupt)."""
    status = staged.status(d.image.url) if d.image.url else "missing"
    if status != "ok":
        counts.images_corrupt += status == "corrupt"
        counts.images_missing += status == "missing"
        return None
    counts.kept += 1
    counts.images_kept += 1
    return d.distractor_id, [(str(d.image.url), dict(d.image.meta))]


def batched(items: Iterator[Planned], size: int | None) -> Iterator[list[Planned]]:
    """Consecutive lists of ``size`` items (one list of everything when ``size`` is None)."""
    batch: list[Planned] = []
    for item in items:
        batch.append(item)
        if size is not None and len(batch) >= size:
            yield batch
            batch = []
    if batch or size is None:
        yield batch


def write_unit(out: Path, name: str, planned: list[Planned], staged: StagedImages) -> None:
    """Write one unit: a product tar, a distractor tar, or a url/jpg parquet."""
    path = out / name
    if path.suffix == ".parquet":
        with UrlBytesWriter(path) as writer:
            for _, images in planned:
                for url, _ in images:
                    writer.add(url, staged.read(url))
        return
    distractors = path.name.startswith("dist_")
    with TarShardWriter(path) as tar:
        for key, images in planned:
            if distractors:
                url, meta = images[0]
                write_distractor_sample(tar, key, staged.read(url), meta)
            else:
                pairs = [(staged.read(url), meta) for url, meta in images]
                write_product_sample(tar, key, pairs)


@dataclass
class UnitLog:
    """Names of the units written and skipped during a run."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        """All units of the run."""
        return set(self.written) | set(self.skipped)


def emit_unit(
    out: Path,
    name: str,
    planned: list[Planned],
    staged: StagedImages,
    fingerprint: str,
    manifest: Manifest,
    units: UnitLog,
) -> None:
    """Write ``name`` unless the manifest says it is already complete with this content."""
    digest = unit_digest(fingerprint, planned)
    if manifest.done(name, digest, out):
        units.skipped.append(name)
        return
    log.info("writing %s (%d samples)", name, len(planned))
    write_unit(out, name, planned, staged)
    manifest.record(name, digest)
    units.written.append(name)
