"""Write a synthetic RVS dataset in the training-code layout, byte-reproducibly.

Rendering may run in worker processes; writing happens here, in a fixed order (train outfits,
then valid, then test, then distractors), so the same seed gives identical files whatever the
number of workers. Besides the published layout it writes ``synth_outfits.parquet`` (one row
per scene image: products visible, their boxes, the style) and ``synth_products.parquet``
(one row per product photo), and, unless the config keeps no style out, ``heldout_style/``:
a test-only training layout with the same test products and distractors whose scenes are all
drawn in the held-out style.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from referred.data.bootstrap import draw_bootstrap_ids, save_bootstrap_ids
from referred.data.synth.outfits import Outfit, SynthConfig, plan_distractors, plan_outfits
from referred.data.synth.render import (
    RenderedOutfit,
    RenderedProduct,
    RenderSettings,
    chunks,
    ordered_map,
    render_distractors,
    render_outfits,
    worker_pool,
)
from referred.data.synth.rows import (
    OUTFIT_SCHEMA,
    OUTFITS_FILE,
    PRODUCT_SCHEMA,
    PRODUCTS_FILE,
    SPLIT_LABELS,
    Rows,
    outfit_row,
    product_row,
)
from referred.data.synth.scene import SceneImage
from referred.data.tario import TarShardWriter
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
from referred.data.writer import (
    HF_SCHEMA,
    MetadataWriter,
    UrlBytesWriter,
    write_distractor_sample,
    write_product_sample,
)

log = logging.getLogger(__name__)

#: The held-out-style test set, a test-only training layout inside the output folder.
HELDOUT_DIR = "heldout_style"
#: Distractor subset sizes of ``bootstrap_IDs.pkl`` (those up to the distractor count).
BOOTSTRAP_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
OUTFIT_CHUNK, DISTRACTOR_CHUNK = 16, 128


@dataclass
class SynthReport:
    """What ``write_synthetic_dataset`` wrote."""

    root: Path
    products: dict[str, int] = field(default_factory=dict)
    outfits: int = 0
    scenes: int = 0
    partial_scenes: int = 0
    heldout_scenes: int = 0
    heldout_style: str | None = None
    distractors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the command line."""
        prods = ", ".join(f"{s} {n}" for s, n in self.products.items())
        dists = ", ".join(f"{s} {n}" for s, n in self.distractors.items())
        heldout = (
            f"; {self.heldout_scenes} test images in held-out style {self.heldout_style!r} "
            f"({HELDOUT_DIR}/)"
            if self.heldout_style
            else ""
        )
        return (
            f"wrote {self.root}: products ({prods}) in {self.outfits} outfits, "
            f"{self.scenes} scenes + {self.partial_scenes} partial crops; distractors ({dists})"
            f"{heldout}; {self.seconds:.1f} s"
        )


class _Rotating:
    """Open ``open_fn(k)`` writers one after another, ``every`` items each (None: one file)."""

    def __init__(self, open_fn: Callable[[int], Any], every: int | None) -> None:
        self._open_fn, self._every = open_fn, every
        self._writer: Any = None
        self._index, self._count = -1, 0

    def __enter__(self) -> _Rotating:
        return self

    def next(self) -> Any:
        """The writer that takes the next item."""
        if self._writer is None or (self._every and self._count >= self._every):
            self._close(None, None, None)
            self._index += 1
            self._writer = self._open_fn(self._index).__enter__()
            self._count = 0
        self._count += 1
        return self._writer

    def _close(self, *exc: Any) -> None:
        if self._writer is not None:
            self._writer.__exit__(*exc)
            self._writer = None

    def __exit__(self, *exc: Any) -> None:
        self._close(*exc)


def _product_writer(out: Path, split: str, config: SynthConfig) -> _Rotating:
    if split == "train":
        return _Rotating(
            lambda k: TarShardWriter(out / TRAIN_DIR / f"{k:05d}.tar"), config.shard_size
        )
    if split == "valid":
        return _Rotating(lambda k: TarShardWriter(out / VALID_DIR / PRODS_TAR), None)
    return _Rotating(lambda k: UrlBytesWriter(out / TEST_DIR / PRODS_PARQUET), None)


Sample = tuple[str, bytes, dict[str, Any]]


def _outfit_samples(
    outfit: Outfit,
    simple: tuple[RenderedProduct, ...],
    scenes: tuple[SceneImage, ...],
    rows: Rows,
    outfit_rows: list[dict[str, Any]],
    scene_dir: str = "scene",
) -> Iterator[tuple[int, list[Sample]]]:
    """Per product of ``outfit``: ``(pid, [(url, jpeg, metadata row), ...])``, simple first."""
    gallery, query = SPLIT_LABELS[outfit.split]
    seed = rows.seed
    scene_urls = []
    for j, scene in enumerate(scenes):
        suffix = "-crop" if scene.partial else ""
        url = f"synth://{seed}/{scene_dir}/{outfit.outfit_id}-{j}{suffix}.jpg"
        scene_urls.append(url)
        outfit_rows.append(
            outfit_row(url, outfit.outfit_id, outfit.split, scene, outfit.product_ids,
                       outfit.items, rows.scene_size)
        )  # fmt: skip
    for p, (pid, item) in enumerate(zip(outfit.product_ids, outfit.items)):
        url = f"synth://{seed}/product/{pid}.jpg"
        images = [(url, simple[p].jpeg, rows.item(url, pid, item, gallery))]
        for scene, scene_url in zip(scenes, scene_urls):
            if p in scene.visible:
                kind = "PARTIAL_COMPLEX" if scene.partial else "COMPLEX"
                visible = [outfit.items[i] for i in scene.visible]
                images.append(
                    (scene_url, scene.jpeg, rows.scene(scene_url, pid, kind, visible, query))
                )
        yield pid, images


class _Split:
    """The writers of one training-layout folder's products: images, root metadata, scenes."""

    def __init__(self, root: Path, stack: contextlib.ExitStack) -> None:
        self.simple = stack.enter_context(MetadataWriter(root / ROOT_SIMPLE, HF_SCHEMA))
        self.complex = stack.enter_context(MetadataWriter(root / ROOT_COMPLEX, HF_SCHEMA))
        self.scenes = stack.enter_context(MetadataWriter(root / OUTFITS_FILE, OUTFIT_SCHEMA))

    def add(self, writer: Any, pid: int, images: list[Sample]) -> None:
        if isinstance(writer, UrlBytesWriter):
            for url, data, _ in images:
                writer.add(url, data)
        else:
            write_product_sample(writer, str(pid), [(d, m) for _, d, m in images])
        self.simple.add(images[0][2])
        for _, _, meta in images[1:]:
            self.complex.add(meta)


def _write_outfit(
    outfit: Outfit,
    result: RenderedOutfit,
    rows: Rows,
    main: tuple[_Split, _Rotating],
    heldout: tuple[_Split, UrlBytesWriter] | None,
    products: MetadataWriter,
    report: SynthReport,
) -> None:
    split, writer = main
    scene_rows: list[dict[str, Any]] = []
    for p, (pid, images) in enumerate(
        _outfit_samples(outfit, result.simple, result.scenes, rows, scene_rows)
    ):
        split.add(writer.next(), pid, images)
        style = result.simple[p].style
        products.add(product_row(images[0][0], pid, "product", outfit.split,
                                 outfit.items[p], style))  # fmt: skip
        report.products[outfit.split] = report.products.get(outfit.split, 0) + 1
    for row in scene_rows:
        split.scenes.add(row)
    report.outfits += 1
    report.scenes += sum(not s.partial for s in result.scenes)
    report.partial_scenes += sum(s.partial for s in result.scenes)
    if heldout is None or not result.heldout:
        return
    held, prods = heldout
    scene_rows = []
    style = result.heldout[0].style
    samples = _outfit_samples(outfit, result.simple, result.heldout, rows, scene_rows,
                              scene_dir=f"scene-{style}")  # fmt: skip
    for pid, images in samples:
        held.add(prods, pid, images)
    for row in scene_rows:
        held.scenes.add(row)
    report.heldout_scenes += len(result.heldout)


def _write_products(
    out: Path,
    config: SynthConfig,
    outfits: list[Outfit],
    stack: contextlib.ExitStack,
    rows: Rows,
    report: SynthReport,
    pool: Executor | None,
) -> MetadataWriter:
    main = _Split(out, stack)
    products = stack.enter_context(MetadataWriter(out / PRODUCTS_FILE, PRODUCT_SCHEMA))
    heldout: tuple[_Split, UrlBytesWriter] | None = None
    if config.heldout_style is not None:
        held_root = out / HELDOUT_DIR
        prods = stack.enter_context(UrlBytesWriter(held_root / TEST_DIR / PRODS_PARQUET))
        heldout = (_Split(held_root, stack), prods)
    settings = RenderSettings.of(config)
    tasks = ((settings, chunk) for chunk in chunks(outfits, OUTFIT_CHUNK))
    rendered = itertools.chain.from_iterable(
        ordered_map(render_outfits, tasks, pool, 2 * config.workers)
    )
    for split, group in itertools.groupby(zip(outfits, rendered), key=lambda p: p[0].split):
        with _product_writer(out, split, config) as rotating:
            for outfit, result in group:
                _write_outfit(outfit, result, rows, (main, rotating), heldout, products, report)
    return products


def _write_distractors(
    out: Path,
    config: SynthConfig,
    split: str,
    first_pid: int,
    rows: Rows,
    stack: contextlib.ExitStack,
    pool: Executor | None,
    products: MetadataWriter,
) -> int:
    specs = plan_distractors(config, split)
    settings = RenderSettings.of(config)
    tasks = ((settings, chunk) for chunk in chunks(specs, DISTRACTOR_CHUNK))
    images = itertools.chain.from_iterable(
        ordered_map(render_distractors, tasks, pool, 2 * config.workers)
    )
    label = SPLIT_LABELS[split][0]
    every = config.dist_shard_size
    if split == "valid":
        rotating = _Rotating(lambda k: TarShardWriter(out / VALID_DIR / f"dist_{k}.tar"), every)
        meta_writer = None
    else:
        rotating = _Rotating(lambda k: UrlBytesWriter(out / TEST_DIR / f"dist_{k}.parquet"), every)
        meta_writer = stack.enter_context(MetadataWriter(out / ROOT_DISTRACTORS, HF_SCHEMA))
    with rotating:
        for spec, image in zip(specs, images):
            url = f"synth://{config.seed}/distractor/{split}/{spec.index}.jpg"
            pid = first_pid + spec.index
            row = rows.item(url, pid, spec.item, label)
            writer = rotating.next()
            if meta_writer is None:
                write_distractor_sample(writer, str(spec.index), image.jpeg, row)
            else:
                writer.add(url, image.jpeg)
                meta_writer.add(row)
            products.add(product_row(url, pid, "distractor", split, spec.item, image.style))
    return len(specs)


def _clear_previous(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"output folder {out} is not empty; pass --overwrite (overwrite=True) to replace it"
        )
    for name in (TRAIN_DIR, VALID_DIR, TEST_DIR, HELDOUT_DIR):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in (ROOT_SIMPLE, ROOT_COMPLEX, ROOT_DISTRACTORS, BOOTSTRAP_FILE, OUTFITS_FILE,
                 PRODUCTS_FILE):  # fmt: skip
        (out / name).unlink(missing_ok=True)


def _share_test_files(out: Path) -> None:
    """Give the held-out-style set the main test split's distractors and bootstrap ids
    (hard links where the file system allows, else copies: the same bytes either way)."""
    held = out / HELDOUT_DIR
    names = [ROOT_DISTRACTORS, BOOTSTRAP_FILE]
    names += sorted(f"{TEST_DIR}/{p.name}" for p in (out / TEST_DIR).glob("dist_*.parquet"))
    for name in names:
        source, target = out / name, held / name
        if not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def write_synthetic_dataset(
    out: Path, config: SynthConfig, *, overwrite: bool = False
) -> SynthReport:
    """Write a synthetic dataset under ``out`` (see ``docs/data.md``); returns a report.

    ``out`` must be absent or empty unless ``overwrite`` (then the previous layout's files are
    removed first). The same ``config`` (whatever ``workers``) gives byte-identical files.
    """
    start = time.perf_counter()
    out = Path(out)
    _clear_previous(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    outfits = plan_outfits(config)
    rows = Rows(config.seed, config.size, config.scene_side)
    report = SynthReport(root=out, heldout_style=config.heldout_style)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(worker_pool(config.workers))
        products = _write_products(out, config, outfits, stack, rows, report, pool)
        first = config.products + 1
        for split in ("valid", "test"):
            report.distractors[split] = _write_distractors(
                out, config, split, first, rows, stack, pool, products
            )
            first += config.distractors
    test_ids = np.array([p for o in outfits if o.split == "test" for p in o.product_ids])
    sizes = [n for n in BOOTSTRAP_SIZES if n <= config.distractors] or (
        [config.distractors] if config.distractors else []
    )
    subsets = draw_bootstrap_ids(
        test_ids, config.distractors, seed=[config.seed, 5], distractor_sizes=sizes
    )
    save_bootstrap_ids(out / BOOTSTRAP_FILE, subsets)
    if config.heldout_style is not None:
        _share_test_files(out)
    report.seconds = time.perf_counter() - start
    log.debug("%s", report.summary())
    return report
