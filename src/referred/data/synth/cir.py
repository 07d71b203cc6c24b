"""Synthetic composed-retrieval triplets in the FashionIQ layout ("this, but in red").

Each *reference* product of a category gets two edited versions (:func:`edit_item`: one or
two attributes changed, every other detail kept), each drawn as its own product photo, and
four triplets: reference → each version with the edit's text, and each version → reference
with the reverse edit's text ("in red" / "in blue", "same but striped" / "less busy"). Every
triplet carries two texts in different wordings, as FashionIQ's two annotators give. The two
versions of one reference are each other's hard negative: same product, another change.

Synthetic categories map onto FashionIQ's names (:data:`CIR_CATEGORIES`), so the files are
those of FashionIQ (:mod:`referred.data.fashioniq`) and the same reader, training and
benchmark serve both. Every image and text draws from its own generator keyed by (seed,
split, category, reference), so the output depends on nothing else.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from referred.categories import LRVSF_CATEGORIES
from referred.data.fashioniq import IMAGES_DIR, SPLITS, Triplet, write_split_files
from referred.data.synth.attributes import sample_item
from referred.data.synth.edit_texts import two_captions
from referred.data.synth.edits import edit_item
from referred.data.synth.render import RenderSettings, render_product
from referred.data.synth.styles import training_styles

#: FashionIQ category → the synthetic category drawn for it (dresses, outer shirts and
#: jackets, tops and tees).
CIR_CATEGORIES: dict[str, str] = {"dress": "Whole Body", "shirt": "Outwear", "toptee": "Upper Body"}
#: Written at the root: the config and what was written.
META_FILE = "synth_cir.json"
#: Bumped whenever the same config draws different data.
CIR_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class CIRSynthConfig:
    """Sizes and seed of a synthetic FashionIQ-layout set.

    ``train``, ``val`` and ``test`` are references per category and split; each gives 3
    images and 4 triplets. A reference is keyed by its split, category and index, so a
    larger ``train`` adds references and leaves the others (and the test split) as they
    were. ``two_edit_fraction`` of the edits change two attributes. ``categories`` maps the
    names written to synthetic categories.
    """

    train: int = 2000
    val: int = 100
    test: int = 250
    two_edit_fraction: float = 0.3
    size: int = 224
    seed: int = 0
    jpeg_quality: int = 92
    categories: Mapping[str, str] = field(default_factory=lambda: dict(CIR_CATEGORIES))

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} references must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.two_edit_fraction <= 1.0:
            raise ValueError(f"two_edit_fraction must be in [0, 1], got {self.two_edit_fraction}")
        if not 16 <= self.size <= 1024:
            raise ValueError(f"size must be between 16 and 1024 pixels, got {self.size}")
        bad = sorted(set(self.categories.values()) - set(LRVSF_CATEGORIES))
        if not self.categories or bad:
            raise ValueError(
                f"categories must map names to synthetic categories {LRVSF_CATEGORIES}; got "
                f"unknown {bad}"
                if bad
                else "categories must not be empty"
            )

    def counts(self) -> dict[str, int]:
        """References per split (each category)."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class ReferenceGroup:
    """One reference, its two edited versions (image names) and their four triplets."""

    images: tuple[str, str, str]
    specs: tuple  # (ItemSpec, ItemSpec, ItemSpec)
    triplets: tuple[Triplet, ...]


def draw_group(config: CIRSynthConfig, split: str, name: str, index: int) -> ReferenceGroup:
    """The ``index``-th reference of category ``name`` in ``split``: pure in its arguments."""
    cat_index = list(config.categories).index(name)
    rng = np.random.default_rng([config.seed, 7, SPLITS.index(split), cat_index, index])
    base = sample_item(config.categories[name], rng)
    images = tuple(f"{name}_{split}_{index:05d}{k}" for k in "abc")
    specs, triplets = [base], []
    for version in (1, 2):
        n_edits = 2 if rng.random() < config.two_edit_fraction else 1
        target, edits = edit_item(base, rng, n_edits)
        specs.append(target)
        forward = two_captions(edits, rng)
        backward = two_captions([e.reversed() for e in reversed(edits)], rng)
        triplets.append(Triplet(images[0], images[version], forward, name))
        triplets.append(Triplet(images[version], images[0], backward, name))
    return ReferenceGroup(images, tuple(specs), tuple(triplets))  # type: ignore[arg-type]


@dataclass
class CIRSynthReport:
    """What :func:`write_cir_dataset` wrote."""

    root: Path
    triplets: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        trip = ", ".join(f"{s} {n}" for s, n in self.triplets.items())
        imgs = ", ".join(f"{s} {n}" for s, n in self.images.items())
        return (
            f"wrote {self.root} (FashionIQ layout): triplets ({trip}); images ({imgs}); "
            f"{self.seconds:.1f} s"
        )


def write_cir_dataset(
    out: str | Path, config: CIRSynthConfig, overwrite: bool = False
) -> CIRSynthReport:
    """Draw and write the set into ``out`` (absent, empty, or a previous set with
    ``overwrite``). Same config, same bytes."""
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True (--overwrite)")
        if not (root / META_FILE).is_file():
            raise FileExistsError(f"{root} holds something else than a synthetic set; not replaced")
        shutil.rmtree(root)
    (root / IMAGES_DIR).mkdir(parents=True)
    t0 = time.perf_counter()
    settings = RenderSettings(
        config.seed,
        config.size,
        config.size,
        (config.jpeg_quality,) * 2,
        training_styles(None),
        None,
    )
    report = CIRSynthReport(root)
    for split, n in config.counts().items():
        report.triplets[split] = report.images[split] = 0
        for c_index, name in enumerate(config.categories):
            groups = [draw_group(config, split, name, i) for i in range(n)]
            for i, group in enumerate(groups):
                for k, (image, spec) in enumerate(zip(group.images, group.specs)):
                    key = [8, SPLITS.index(split), c_index, i, k]
                    jpeg = render_product(spec, settings, key).jpeg
                    (root / IMAGES_DIR / f"{image}.jpg").write_bytes(jpeg)
            triplets = [t for g in groups for t in g.triplets]
            images = [im for g in groups for im in g.images]
            write_split_files(root, split, name, triplets, images)
            report.triplets[split] += len(triplets)
            report.images[split] += len(images)
    report.seconds = time.perf_counter() - t0
    meta = {
        "generator": "referred.data.synth.cir",
        "version": CIR_GENERATOR_VERSION,
        "config": {**asdict(config), "categories": dict(config.categories)},
        "triplets": report.triplets,
        "images": report.images,
    }
    (root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return report
