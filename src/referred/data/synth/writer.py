"""Write a synthetic RVS dataset in the training-code layout, byte-reproducibly.

Rendering may run in worker processes; writing happens here, in a fixed order (train outfits,
then valid, then test, then distractors), so the same seed gives identical files whatever the
number of workers. Besides the published layout it writes ``synth_outfits.parquet``: one row
per scene image with the ids and categories of the products visible in it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from referred.data.bootstrap import draw_bootstrap_ids, save_bootstrap_ids
from referred.data.files import url_key
from referred.data.synth.attributes import ItemSpec
from referred.data.synth.outfits import (
    Outfit,
    SynthConfig,
    plan_distractors,
    plan_outfits,
)
from referred.data.synth.render import (
    RenderedOutfit,
    RenderSettings,
    chunks,
    ordered_map,
    render_distractors,
    render_outfits,
    worker_pool,
)
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

OUTFITS_FILE = "synth_outfits.parquet"
OUTFIT_SCHEMA = pa.schema(
    [
        ("URL", pa.string()),
        ("TYPE", pa.string()),
        ("OUTFIT_ID", pa.int64()),
        ("SPLIT", pa.string()),
        ("PRODUCT_IDS", pa.list_(pa.int64())),
        ("CATEGORIES", pa.list_(pa.string())),
    ]
)
#: split → (SPLIT of gallery-side rows, SPLIT of query-side rows)
SPLIT_LABELS = {
    "train": ("train", "train"),
    "valid": ("val_gallery", "val_query"),
    "test": ("test_gallery", "test_query"),
}
#: Distractor subset sizes of ``bootstrap_IDs.pkl`` (those up to the distractor count).
BOOTSTRAP_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
OUTFIT_CHUNK, DISTRACTOR_CHUNK = 32, 256


@dataclass
class SynthReport:
    """What ``write_synthetic_dataset`` wrote."""

    root: Path
    products: dict[str, int] = field(default_factory=dict)
    outfits: int = 0
    scenes: int = 0
    partial_scenes: int = 0
    distractors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the command line."""
        prods = ", ".join(f"{s} {n}" for s, n in self.products.items())
        dists = ", ".join(f"{s} {n}" for s, n in self.distractors.items())
        return (
            f"wrote {self.root}: products ({prods}) in {self.outfits} outfits, "
            f"{self.scenes} scenes + {self.partial_scenes} partial crops; distractors ({dists}); "
            f"{self.seconds:.1f} s"
        )


def _pseudo(url: str, salt: int, scale: float) -> float:
    """A deterministic pseudo-random value in [0, scale) derived from a URL."""
    return round(((url_key(url) >> salt) % 10_000) / 10_000 * scale, 4)


class _Rows:
    """Metadata rows in the Hugging Face columns, with a running ``INDEX_SRC``."""

    def __init__(self, seed: int, size: int) -> None:
        self.seed, self.size = seed, size
        self._index: dict[str, int] = {}

    def _base(self, url: str) -> dict[str, Any]:
        index = self._index.setdefault(url, len(self._index))
        return {
            "URL": url,
            "WIDTH": self.size,
            "HEIGHT": self.size,
            "language": "en",
            "punsafe": _pseudo(url, 0, 0.05),
            "pwatermark": _pseudo(url, 16, 0.4),
            "INDEX_SRC": index,
        }

    def item(self, url: str, pid: int, item: ItemSpec, split_label: str) -> dict[str, Any]:
        """Row of an image of ``item`` alone (a product's SIMPLE image or a distractor)."""
        row = self._base(url)
        row.update(
            TEXT=item.title(),
            ENG_TEXT=item.title(),
            TYPE="SIMPLE",
            PRODUCT_ID=pid,
            SPLIT=split_label,
            CATEGORY=item.category,
            blip2_caption1=item.caption(),
            blip2_caption2=item.caption2(),
        )
        return row

    def scene(
        self, url: str, pid: int, kind: str, items: list[ItemSpec], split_label: str
    ) -> dict[str, Any]:
        """Row of a scene image used as a complex image of product ``pid``."""
        captions = [i.caption() for i in items]
        worn = ", ".join(captions[:-1]) + f" and {captions[-1]}"
        text = "Outfit: " + "; ".join(captions)
        row = self._base(url)
        row.update(
            TEXT=text,
            ENG_TEXT=text,
            TYPE=kind,
            PRODUCT_ID=pid,
            SPLIT=split_label,
            CATEGORY=None,
            blip2_caption1=f"a person wearing {worn}",
            blip2_caption2=f"a figure in a {len(items)}-piece outfit, cluttered background",
        )
        return row


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


def _outfit_samples(
    outfit: Outfit, rendered: RenderedOutfit, rows: _Rows, outfit_rows: list[dict[str, Any]]
) -> Iterator[tuple[int, list[tuple[str, bytes, dict[str, Any]]]]]:
    """Per product of ``outfit``: ``(pid, [(url, jpeg, metadata row), ...])``, simple first."""
    gallery, query = SPLIT_LABELS[outfit.split]
    seed = rows.seed
    scene_urls = []
    for j, scene in enumerate(rendered.scenes):
        suffix = "-crop" if scene.partial else ""
        url = f"synth://{seed}/scene/{outfit.outfit_id}-{j}{suffix}.jpg"
        scene_urls.append(url)
        outfit_rows.append(
            {
                "URL": url,
                "TYPE": "PARTIAL_COMPLEX" if scene.partial else "COMPLEX",
                "OUTFIT_ID": outfit.outfit_id,
                "SPLIT": outfit.split,
                "PRODUCT_IDS": [outfit.product_ids[i] for i in scene.visible],
                "CATEGORIES": [outfit.items[i].category for i in scene.visible],
            }
        )
    for p, (pid, item) in enumerate(zip(outfit.product_ids, outfit.items)):
        url = f"synth://{seed}/product/{pid}.jpg"
        images = [(url, rendered.simple[p], rows.item(url, pid, item, gallery))]
        for scene, scene_url in zip(rendered.scenes, scene_urls):
            if p in scene.visible:
                kind = "PARTIAL_COMPLEX" if scene.partial else "COMPLEX"
                visible = [outfit.items[i] for i in scene.visible]
                images.append(
                    (scene_url, scene.jpeg, rows.scene(scene_url, pid, kind, visible, query))
                )
        yield pid, images


def _write_products(
    out: Path,
    config: SynthConfig,
    outfits: list[Outfit],
    stack: contextlib.ExitStack,
    rows: _Rows,
    report: SynthReport,
    pool: Executor | None,
) -> None:
    simple_meta = stack.enter_context(MetadataWriter(out / ROOT_SIMPLE, HF_SCHEMA))
    complex_meta = stack.enter_context(MetadataWriter(out / ROOT_COMPLEX, HF_SCHEMA))
    table = stack.enter_context(MetadataWriter(out / OUTFITS_FILE, OUTFIT_SCHEMA))
    settings = RenderSettings(config.seed, config.size, config.jpeg_quality)
    tasks = ((settings, chunk) for chunk in chunks(outfits, OUTFIT_CHUNK))
    rendered = itertools.chain.from_iterable(
        ordered_map(render_outfits, tasks, pool, 2 * config.workers)
    )
    for split, group in itertools.groupby(zip(outfits, rendered), key=lambda p: p[0].split):
        with _product_writer(out, split, config) as rotating:
            for outfit, result in group:
                outfit_rows: list[dict[str, Any]] = []
                for pid, images in _outfit_samples(outfit, result, rows, outfit_rows):
                    writer = rotating.next()
                    if isinstance(writer, UrlBytesWriter):
                        for url, data, _ in images:
                            writer.add(url, data)
                    else:
                        write_product_sample(writer, str(pid), [(d, m) for _, d, m in images])
                    simple_meta.add(images[0][2])
                    for _, _, meta in images[1:]:
                        complex_meta.add(meta)
                    report.products[split] = report.products.get(split, 0) + 1
                for row in outfit_rows:
                    table.add(row)
                report.outfits += 1
                report.scenes += sum(not s.partial for s in result.scenes)
                report.partial_scenes += sum(s.partial for s in result.scenes)


def _write_distractors(
    out: Path,
    config: SynthConfig,
    split: str,
    first_pid: int,
    rows: _Rows,
    stack: contextlib.ExitStack,
    pool: Executor | None,
) -> int:
    specs = plan_distractors(config, split)
    settings = RenderSettings(config.seed, config.size, config.jpeg_quality)
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
        for spec, data in zip(specs, images):
            url = f"synth://{config.seed}/distractor/{split}/{spec.index}.jpg"
            row = rows.item(url, first_pid + spec.index, spec.item, label)
            writer = rotating.next()
            if meta_writer is None:
                write_distractor_sample(writer, str(spec.index), data, row)
            else:
                writer.add(url, data)
                meta_writer.add(row)
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
    for name in (TRAIN_DIR, VALID_DIR, TEST_DIR):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in (ROOT_SIMPLE, ROOT_COMPLEX, ROOT_DISTRACTORS, BOOTSTRAP_FILE, OUTFITS_FILE):
        (out / name).unlink(missing_ok=True)


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
    rows = _Rows(config.seed, config.size)
    report = SynthReport(root=out)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(worker_pool(config.workers))
        _write_products(out, config, outfits, stack, rows, report, pool)
        first = config.products + 1
        for split in ("valid", "test"):
            report.distractors[split] = _write_distractors(
                out, config, split, first, rows, stack, pool
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
    report.seconds = time.perf_counter() - start
    log.debug("%s", report.summary())
    return report
