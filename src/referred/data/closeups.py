"""A training set of close-ups: every scene of a product replaced by the close-up of its item.

A CondViT that zooms (:mod:`referred.zoom`) embeds, at query time, the square close-up around
the box its locator finds. It learns to match such close-ups to product photos from a copy of
the training data whose scene images are those close-ups, cut around the true boxes
(:func:`referred.data.boxes.read_item_boxes`) by the same rule
(:func:`referred.zoom.boxes.close_up_window`). ``write_closeups(SRC, DST)`` writes that copy of
a training-layout dataset:

* ``TRAIN/*.tar`` and ``VALID/*.tar``: each product's non-SIMPLE images (COMPLEX,
  PARTIAL_COMPLEX) whose box is known become the close-up (same name, same format; WIDTH and
  HEIGHT updated); images without a box are kept whole and counted; everything else (the
  product photos, distractor shards, the metadata) is copied byte for byte;
* every other entry of SRC (the test split, metadata tables, the held-out style) is linked,
  not copied: queries of the test split stay whole scenes, which the zooming query path cuts;
  except the box files, whose boxes are those of the whole scenes (fit the locator on SRC).

``jitter > 0`` cuts each TRAIN close-up around the true box moved and resized at random
(:func:`referred.zoom.boxes.jitter_box`, fixed per image): a located box is rarely exact, and
a CondViT trained only on exact close-ups loses much of its recall to a window a little too
large (docs/benchmarks.md, "What the locator's errors cost"). VALID close-ups stay exact.

Shards are written atomically; a damaged shard is reported and its readable samples kept.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from referred.data.boxes import BOXES_CSV, read_item_boxes
from referred.data.records import ReadStats
from referred.data.synth import OUTFITS_FILE
from referred.data.tario import TarShardWriter, iter_tar_samples
from referred.data.training_layout import IMAGE_EXTS
from referred.zoom.boxes import GROW, close_up_window, jitter_box

#: PIL formats of the training layout's image extensions (the close-up keeps its format).
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
SPLITS = ("TRAIN", "VALID")
#: Not linked into the copy: their boxes are of the whole scenes.
BOX_FILES = (OUTFITS_FILE, BOXES_CSV)


@dataclass
class CloseupReport:
    """What was written: close-ups cut, scene images kept whole (no box), images that did not
    decode (kept as they were), shards written, and the readers' problems."""

    output: Path
    boxes_from: str
    closeups: int = 0
    kept_whole: int = 0
    undecodable: int = 0
    shards: int = 0
    stats: ReadStats = field(default_factory=ReadStats)

    def summary(self) -> str:
        return (
            f"{self.output}: {self.closeups} close-ups from {self.boxes_from}, "
            f"{self.kept_whole} scene images kept whole (no box), {self.undecodable} "
            f"undecodable kept as they were, {self.shards} shards"
            + (f"; {self.stats.summary()}" if self.stats.problem_counts else "")
        )


def close_up_bytes(data: bytes, ext: str, box, grow: float) -> tuple[bytes, tuple[int, int]]:
    """Encoded image → (the encoded close-up around ``box``, its size). Raises OSError or
    ValueError when the bytes do not decode."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        close = img.crop(close_up_window(box, img.size, grow))
    buf = io.BytesIO()
    fmt = _FORMATS.get(ext.lower(), "JPEG")
    close.save(buf, fmt, **({"quality": 92} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue(), close.size


def _per_product(meta: object) -> bool:
    """A per-product sample's JSON is ``{index: metadata}``; a distractor's is flat."""
    return isinstance(meta, dict) and bool(meta) and all(isinstance(v, dict) for v in meta.values())


def _rewrite_shard(src: Path, dst: Path, boxes, grow: float, jitter: float = 0.0) -> CloseupReport:
    """Write the close-up copy of one shard (its boxes jittered by ``jitter``); what it did, as
    a report of its own."""
    report = CloseupReport(output=dst, boxes_from="")
    with TarShardWriter(dst) as out:
        for sample in iter_tar_samples(src, report.stats, str(src)):
            files = dict(sample.files)
            try:
                meta = json.loads(files.get("json", b"null"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                meta = None
            if _per_product(meta):
                for index, entry in meta.items():
                    ext = next((e for e in IMAGE_EXTS if f"{index}.{e}" in files), None)
                    if ext is None or entry.get("TYPE") == "SIMPLE":
                        continue
                    key = (entry.get("URL"), str(entry.get("PRODUCT_ID")))
                    box = boxes.get(key)
                    if box is None:
                        report.kept_whole += 1
                        continue
                    box = jitter_box(box, jitter, f"{key[0]}|{key[1]}")
                    try:
                        data, size = close_up_bytes(files[f"{index}.{ext}"], ext, box, grow)
                    except (OSError, ValueError):
                        report.undecodable += 1
                        continue
                    files[f"{index}.{ext}"] = data
                    entry["WIDTH"], entry["HEIGHT"] = size
                    report.closeups += 1
                files["json"] = json.dumps(meta).encode()
            for ext, data in files.items():
                out.add(f"{sample.key}.{ext}" if ext else sample.key, data)
    report.shards += 1
    return report


_BOXES: dict = {}  # a worker process's boxes (set once by _init_worker, not sent per shard)


def _init_worker(boxes: dict) -> None:
    global _BOXES
    _BOXES = boxes


def _rewrite_in_worker(src: Path, dst: Path, grow: float, jitter: float) -> CloseupReport:
    return _rewrite_shard(src, dst, _BOXES, grow, jitter)


def _add(report: CloseupReport, part: CloseupReport) -> None:
    report.closeups += part.closeups
    report.kept_whole += part.kept_whole
    report.undecodable += part.undecodable
    report.shards += part.shards
    report.stats.merge(part.stats)


def write_closeups(
    src: str | Path,
    dst: str | Path,
    *,
    grow: float = GROW,
    jitter: float = 0.0,
    overwrite: bool = False,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> CloseupReport:
    """Write the close-up copy of training-layout dataset ``src`` into ``dst`` (absent or
    empty unless ``overwrite``), ``workers`` shards at a time (processes); TRAIN close-ups
    around boxes jittered by ``jitter`` (0: exact). ValueError when ``src`` has no boxes or no
    training split."""
    src, dst = Path(src), Path(dst)
    if grow < 0:
        raise ValueError(f"grow must be >= 0, got {grow}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not (src / "TRAIN").is_dir():
        raise ValueError(f"{src} has no TRAIN/ folder: close-ups are made from the training layout")
    if src.resolve() == dst.resolve():
        raise ValueError("the close-up copy needs its own folder, not the source's")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ValueError(f"{dst} exists and is not empty; pass overwrite=True to replace it")
    boxes, boxes_from = read_item_boxes(src)
    report = CloseupReport(output=dst, boxes_from=boxes_from)
    dst.mkdir(parents=True, exist_ok=True)
    jobs = []
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.name in SPLITS and entry.is_dir():
            target.mkdir(exist_ok=True)
            jobs += [(shard, target / shard.name) for shard in sorted(entry.glob("*.tar"))]
            continue
        if entry.name in BOX_FILES:
            continue  # its boxes are those of the whole scenes: fit the locator on src
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            continue  # a folder left by an earlier run: keep it
        target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    jobs = [(s, d, jitter if s.parent.name == "TRAIN" else 0.0) for s, d in jobs]
    for (shard, _, _), part in zip(jobs, _rewrite_all(jobs, boxes, grow, workers)):
        _add(report, part)
        log(f"{shard.parent.name}/{shard.name}: {part.closeups} close-ups")
    return report


def _rewrite_all(jobs: list[tuple[Path, Path, float]], boxes: dict, grow: float, workers: int):
    """Each job's (source, destination, jitter) report, in job order: in this process, or in a
    pool of ``workers``."""
    if workers == 1 or len(jobs) < 2:
        yield from (_rewrite_shard(s, d, boxes, grow, j) for s, d, j in jobs)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    n = min(workers, len(jobs))
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(boxes,)) as ex:
        src, dst, jitter = zip(*jobs)
        yield from ex.map(_rewrite_in_worker, src, dst, [grow] * len(jobs), jitter)
