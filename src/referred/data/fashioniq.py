"""The FashionIQ layout of composed-retrieval data: reading it, and writing its JSON files.

A FashionIQ root holds::

    captions/cap.<category>.<split>.json       [{"candidate": ID, "target": ID,
                                                  "captions": [text, text]}, ...]
    image_splits/split.<category>.<split>.json [ID, ...]   the split's images of the category
    images/<ID>.<png|jpg|jpeg|webp>

The official categories are ``dress``, ``shirt`` and ``toptee``; this reader takes whatever
category names the caption files use, so a synthetic set or another catalogue in the same
layout reads the same way. The official protocol (:mod:`referred.eval.cir`) ranks, for each
triplet, the images of the split's category (``image_splits``) with the candidate left out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from referred.data.records import DataFileError

CAPTIONS_DIR, SPLITS_DIR, IMAGES_DIR = "captions", "image_splits", "images"
#: FashionIQ's own categories and splits.
FASHIONIQ_CATEGORIES: tuple[str, ...] = ("dress", "shirt", "toptee")
SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
_CAPTION_FILE = re.compile(r"^cap\.(?P<category>[^.]+)\.(?P<split>[^.]+)\.json$")


@dataclass(frozen=True)
class Triplet:
    """A candidate image, a modification (one text per annotator) and the wanted target."""

    candidate: str
    target: str
    captions: tuple[str, ...]
    category: str

    def text(self) -> str:
        """The captions joined as the FashionIQ protocol of CLIP4Cir does: "c1 and c2"."""
        return " and ".join(c.strip().rstrip(".") for c in self.captions if c.strip())


def caption_path(root: Path, category: str, split: str) -> Path:
    return Path(root) / CAPTIONS_DIR / f"cap.{category}.{split}.json"


def split_path(root: Path, category: str, split: str) -> Path:
    return Path(root) / SPLITS_DIR / f"split.{category}.{split}.json"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc})") from exc
    except ValueError as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc})") from exc


def parse_triplets(entries: object, category: str, where: str) -> list[Triplet]:
    """The triplets of one caption file's JSON (a list of dicts); errors name the entry."""
    if not isinstance(entries, list):
        raise DataFileError(f"{where}: expected a JSON list of triplets, got {type(entries)}")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not {"candidate", "target", "captions"} <= set(e):
            raise DataFileError(
                f"{where}: entry {i} is not {{'candidate', 'target', 'captions'}}: {e!r:.120}"
            )
        caps = e["captions"]
        if (
            not isinstance(caps, list)
            or not caps
            or not all(isinstance(c, str) for c in caps)
            or not any(c.strip() for c in caps)
        ):
            raise DataFileError(f"{where}: entry {i} needs 'captions': a list of texts")
        out.append(Triplet(str(e["candidate"]), str(e["target"]), tuple(caps), category))
    return out


class FashionIQ:
    """A FashionIQ-layout folder; categories and splits are those its caption files name."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        cap_dir = self.root / CAPTIONS_DIR
        if not cap_dir.is_dir():
            raise FileNotFoundError(
                f"{self.root} is not a FashionIQ-layout folder: no {CAPTIONS_DIR}/ (expected "
                f"{CAPTIONS_DIR}/cap.<category>.<split>.json, {SPLITS_DIR}/, {IMAGES_DIR}/)"
            )
        found = [m for p in sorted(cap_dir.iterdir()) if (m := _CAPTION_FILE.match(p.name))]
        if not found:
            raise DataFileError(f"{cap_dir}: no cap.<category>.<split>.json files")
        self._pairs = {(m["category"], m["split"]) for m in found}
        cats = {c for c, _ in self._pairs}
        # FashionIQ's own order first, then any other names alphabetically
        self.categories: tuple[str, ...] = tuple(
            [c for c in FASHIONIQ_CATEGORIES if c in cats]
            + sorted(cats - set(FASHIONIQ_CATEGORIES))
        )
        self._paths: dict[str, Path] | None = None

    def splits(self) -> tuple[str, ...]:
        """Splits with captions for at least one category (train, val, test first)."""
        names = {s for _, s in self._pairs}
        return tuple([s for s in SPLITS if s in names] + sorted(names - set(SPLITS)))

    def check_split(self, split: str) -> None:
        if split not in self.splits():
            raise DataFileError(
                f"{self.root}: no captions for split {split!r}; it has {list(self.splits())}"
            )

    def categories_of(self, split: str) -> tuple[str, ...]:
        """Categories with a caption file for ``split``."""
        self.check_split(split)
        return tuple(c for c in self.categories if (c, split) in self._pairs)

    def triplets(self, split: str, categories: Iterable[str] | None = None) -> list[Triplet]:
        """Every triplet of ``split`` (of ``categories``, default all), file order."""
        cats = self.categories_of(split) if categories is None else tuple(categories)
        out: list[Triplet] = []
        for c in cats:
            path = caption_path(self.root, c, split)
            if not path.is_file():
                raise DataFileError(f"{path}: missing; categories of {split}: {self.categories}")
            out += parse_triplets(_read_json(path), c, str(path))
        return out

    def gallery(self, split: str, category: str) -> list[str]:
        """The split's images of ``category`` (``image_splits``); without that file, every
        candidate and target of the split's triplets of the category, in first-seen order."""
        path = split_path(self.root, category, split)
        if not path.is_file():
            seen = [n for t in self.triplets(split, [category]) for n in (t.candidate, t.target)]
            return list(dict.fromkeys(seen))
        names = _read_json(path)
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise DataFileError(f"{path}: expected a JSON list of image ids")
        return list(dict.fromkeys(str(n) for n in names))

    def image_path(self, name: str) -> Path:
        """The file of image ``name`` under ``images/`` (any of :data:`IMAGE_SUFFIXES`)."""
        if self._paths is None:
            folder = self.root / IMAGES_DIR
            if not folder.is_dir():
                raise FileNotFoundError(f"{self.root}: no {IMAGES_DIR}/ folder")
            self._paths = {
                p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            }
        try:
            return self._paths[name]
        except KeyError:
            raise DataFileError(
                f"{self.root / IMAGES_DIR}: no image {name!r} "
                f"(looked for {name}{{{','.join(IMAGE_SUFFIXES)}}})"
            ) from None


def write_split_files(
    root: Path,
    split: str,
    category: str,
    triplets: Sequence[Triplet],
    images: Sequence[str],
) -> None:
    """Write ``cap.<category>.<split>.json`` and ``split.<category>.<split>.json``."""
    for sub in (CAPTIONS_DIR, SPLITS_DIR):
        (Path(root) / sub).mkdir(parents=True, exist_ok=True)
    caps = [
        {"candidate": t.candidate, "target": t.target, "captions": list(t.captions)}
        for t in triplets
    ]
    caption_path(root, category, split).write_text(json.dumps(caps, indent=1) + "\n")
    split_path(root, category, split).write_text(json.dumps(list(images)) + "\n")
