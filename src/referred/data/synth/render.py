"""Rendering tasks, run in-process or in worker processes, always giving the same bytes.

Every image draws from its own generator: a product's photo from ``(seed, 3, product id)``,
an outfit's scenes from ``(seed, 2, outfit id)`` and its held-out-style scenes from
``(seed, 6, outfit id)``, a distractor from ``(seed, 4, split, index)``; so the output does
not depend on how the work is split between processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from referred.data.synth.attributes import ItemSpec
from referred.data.synth.outfits import SPLITS, DistractorSpec, Outfit, SynthConfig
from referred.data.synth.scene import SceneImage, encode_jpeg, render_scene, render_simple

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RenderSettings:
    """What every task needs besides its items."""

    seed: int
    size: int
    scene_size: int
    quality: tuple[int, int]
    styles: tuple[str, ...]
    heldout_style: str | None

    @classmethod
    def of(cls, config: SynthConfig) -> RenderSettings:
        """The settings of ``config``."""
        return cls(
            config.seed,
            config.size,
            config.scene_side,
            config.quality_range,
            config.styles,
            config.heldout_style,
        )


@dataclass(frozen=True)
class RenderedProduct:
    """JPEG bytes of a product photo and the style it was drawn in."""

    jpeg: bytes
    style: str


@dataclass(frozen=True)
class RenderedOutfit:
    """Each product alone (outfit order), the outfit's scenes, and its held-out-style scenes
    (test outfits only, when the config keeps a style out)."""

    simple: tuple[RenderedProduct, ...]
    scenes: tuple[SceneImage, ...]
    heldout: tuple[SceneImage, ...] = ()


def render_product(item: ItemSpec, settings: RenderSettings, rng_key: list[int]) -> RenderedProduct:
    """A product photo of ``item`` in a training style, drawn from ``rng_key``'s generator."""
    rng = np.random.default_rng([settings.seed, *rng_key])
    style = settings.styles[int(rng.integers(len(settings.styles)))]
    img, look = render_simple(item, settings.size, rng, style, settings.quality)
    return RenderedProduct(encode_jpeg(img, look.quality), style)


def _scenes(
    outfit: Outfit, settings: RenderSettings, rng: np.random.Generator, styles: tuple[str, ...]
) -> tuple[SceneImage, ...]:
    scenes: list[SceneImage] = []
    for j in range(outfit.n_scenes):
        style = styles[int(rng.integers(len(styles)))]
        scenes += render_scene(
            outfit.items,
            settings.scene_size,
            rng,
            quality=settings.quality,
            partial=outfit.partial and j == 0,
            style=style,
            fillers=outfit.fillers,
        )
    return tuple(scenes)


def render_outfits(task: tuple[RenderSettings, list[Outfit]]) -> list[RenderedOutfit]:
    """Render a chunk of outfits: product photos, then ``n_scenes`` scenes (+ maybe a crop)."""
    settings, outfits = task
    out = []
    for outfit in outfits:
        simple = tuple(
            render_product(item, settings, [3, pid])
            for pid, item in zip(outfit.product_ids, outfit.items)
        )
        rng = np.random.default_rng([settings.seed, 2, outfit.outfit_id])
        scenes = _scenes(outfit, settings, rng, settings.styles)
        heldout: tuple[SceneImage, ...] = ()
        if outfit.split == "test" and settings.heldout_style is not None:
            rng = np.random.default_rng([settings.seed, 6, outfit.outfit_id])
            heldout = _scenes(outfit, settings, rng, (settings.heldout_style,))
        out.append(RenderedOutfit(simple, scenes, heldout))
    return out


def render_distractors(task: tuple[RenderSettings, list[DistractorSpec]]) -> list[RenderedProduct]:
    """Each distractor alone, as a product photo."""
    settings, specs = task
    return [
        render_product(spec.item, settings, [4, SPLITS.index(spec.split), spec.index])
        for spec in specs
    ]


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """A process pool for the whole run (``None`` when ``workers`` is 1: render in-process).

    Workers start from a fork server that imported the renderers once, so each worker costs
    a fork, not a fresh interpreter; where there is no fork server, they are spawned.
    """
    if workers <= 1:
        yield None
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def ordered_map(
    fn: Callable[[T], R], tasks: Iterable[T], pool: Executor | None, window: int = 4
) -> Iterator[R]:
    """``map(fn, tasks)`` in order, on ``pool`` (in-process when ``None``).

    At most ``window`` tasks are in flight, so memory stays bounded whatever the count.
    """
    if pool is None:
        yield from map(fn, tasks)
        return
    pending: deque[Future[R]] = deque()
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
