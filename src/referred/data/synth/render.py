"""Rendering tasks, run in-process or in worker processes, always giving the same bytes.

Each outfit draws from its own generator, seeded by ``(seed, 2, outfit_id)``, and images of
products alone are a pure function of their specs, so the output does not depend on how the
work is split between processes.
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

from referred.data.synth.outfits import DistractorSpec, Outfit
from referred.data.synth.scene import SceneImage, encode_jpeg, render_scene, render_simple

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RenderSettings:
    """What every task needs besides its items."""

    seed: int
    size: int
    quality: int


@dataclass(frozen=True)
class RenderedOutfit:
    """JPEG bytes of each product alone (outfit order), and the outfit's scenes."""

    simple: tuple[bytes, ...]
    scenes: tuple[SceneImage, ...]


def render_outfits(task: tuple[RenderSettings, list[Outfit]]) -> list[RenderedOutfit]:
    """Render a chunk of outfits: simple images, then ``n_scenes`` scenes (+ maybe a crop)."""
    settings, outfits = task
    out = []
    for outfit in outfits:
        simple = tuple(
            encode_jpeg(render_simple(item, settings.size), settings.quality)
            for item in outfit.items
        )
        rng = np.random.default_rng([settings.seed, 2, outfit.outfit_id])
        scenes: list[SceneImage] = []
        for j in range(outfit.n_scenes):
            partial = outfit.partial and j == 0
            scenes += render_scene(
                outfit.items, settings.size, rng, quality=settings.quality, partial=partial
            )
        out.append(RenderedOutfit(simple, tuple(scenes)))
    return out


def render_distractors(task: tuple[RenderSettings, list[DistractorSpec]]) -> list[bytes]:
    """JPEG bytes of each distractor alone on white."""
    settings, specs = task
    return [
        encode_jpeg(render_simple(spec.item, settings.size), settings.quality) for spec in specs
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
