"""Training pairs: which images, which condition, which augmentation, in which order.

Per product and epoch (lrvs-f.md §4): one random SIMPLE image (the target, embedded without
condition) and one random COMPLEX / PARTIAL_COMPLEX image (the query), conditioned on the
product's category or on one of its captions chosen at random. Both images get the paper's
augmentation: white square pad, RandomResizedCrop(scale 0.8–1, ratio 3/4–4/3), horizontal flip
with probability 1/2, in PIL and numpy. With ``views`` (``--augment-views N``) each image
instead shows one of N fixed views (itself, or an augmentation drawn once from the image's
row), so that a frozen trunk's maps repeat and can be memoised. Such an image's pixels are then
a function of its *view key* (:func:`view_key`: a digest of its encoded bytes and its view,
and of its row for an augmented view); a sample names each image by it, and skips decoding
those whose key is in ``known`` (the keys a frozen trunk's memo holds,
:mod:`referred.model.trunk_memo`): a blank image stands in for the pixels, which the memo
does not need.

Every random choice of a sample comes from ``np.random.default_rng((seed, epoch, product))``,
and the order from ``(seed, epoch)``: the data seen is the same whatever the number of worker
processes, and a resumed run sees exactly what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from referred.imageio import ImageDecodeError, open_image
from referred.preprocess import pad_to_square
from referred.train.index import PairIndex

#: Products tried, in dataset order, when none of a product's SIMPLE or COMPLEX images decode.
MAX_RETRIES = 16


@dataclass(frozen=True)
class TextConditions:
    """Caption vectors of each product: rows ``rows[start[i]:start[i+1]]`` of a caption bank."""

    start: np.ndarray  # (P + 1,) int64
    rows: np.ndarray  # (K,) int64 rows of the bank


@dataclass(frozen=True)
class AugmentConfig:
    """The paper's augmentation at the model's input ``size`` (``enabled=False``: the inference
    preprocessing only, white square pad and resize)."""

    size: int
    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    pad_value: int = 255
    resample: str = "bilinear"


def crop_box(
    width: int, height: int, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box ``(left, top, right, bottom)`` (torchvision's sampling rule:
    ten tries of area × log-uniform aspect ratio, else the whole image clamped to the ratio)."""
    area = width * height
    log_ratio = (math.log(cfg.ratio[0]), math.log(cfg.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*cfg.scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    w, h = width, height
    if aspect < cfg.ratio[0]:
        h = round(w / cfg.ratio[0])
    elif aspect > cfg.ratio[1]:
        w = round(h * cfg.ratio[1])
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def augment(img: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Pad white to a square, random-resized-crop to ``size``, maybe flip → uint8 (3, S, S)."""
    img = pad_to_square(img, cfg.pad_value)
    box = crop_box(img.width, img.height, cfg, rng) if cfg.enabled else None
    img = img.resize((cfg.size, cfg.size), Image.Resampling[cfg.resample.upper()], box=box)
    arr = np.asarray(img, dtype=np.uint8)  # (S, S, 3)
    if cfg.enabled and rng.random() < cfg.flip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (3, S, S)


class PairDataset(torch.utils.data.Dataset):
    """Sample ``i`` = product ``products[i]`` of the index → one augmented training pair.

    Items are dicts of ``simple`` and ``complex`` uint8 (3, S, S) images, ``cond`` (int64: the
    model's category index, a caption id into ``index.captions``, or -1 without conditioning),
    ``product`` (index row), ``bad_images`` (images met that did not decode: another image of
    the product is tried first), ``replaced`` (> 0 when none of a product's SIMPLE or
    COMPLEX images decoded and the next product stood in), and per image ``{name}_key`` (its
    view key, ``b""`` when its pixels are drawn afresh) and ``{name}_decoded`` (false: the
    key was in :attr:`known`, and the pixels are a blank stand-in).
    """

    def __init__(
        self,
        index: PairIndex,
        products: np.ndarray,
        conditions: np.ndarray | TextConditions | None,
        augment_cfg: AugmentConfig,
        seed: int,
        views: int = 0,
    ) -> None:
        if views < 0:
            raise ValueError(f"views must be >= 0, got {views}")
        self.index, self.products, self.conditions = index, products, conditions
        self.augment_cfg, self.seed, self.views = augment_cfg, seed, views
        self.epoch = 0
        self.known: set[bytes] | None = None  # view keys whose images need no decoding

    @property
    def fixed_views(self) -> bool:
        """Whether each image's pixels are a function of its view key (a finite set of views,
        or no augmentation) rather than drawn afresh at each use."""
        return self.views >= 1 or not self.augment_cfg.enabled

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def labels(self) -> np.ndarray:
        """Category code of each position (:data:`referred.LRVSF_CATEGORIES` index, -1
        unknown)."""
        return self.index.categories[self.products].astype(np.int64)

    def __len__(self) -> int:
        return len(self.products)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        bad = 0
        for attempt in range(MAX_RETRIES):
            row = int(self.products[(i + attempt) % len(self.products)])
            rng = np.random.default_rng((self.seed, self.epoch, row))
            try:
                simple, complex_, cond, bad_here = self._pair(row, rng)
            except _Undecodable as exc:
                bad += exc.bad
                continue
            return {
                "simple": torch.from_numpy(simple.pixels),
                "complex": torch.from_numpy(complex_.pixels),
                "cond": torch.tensor(cond, dtype=torch.int64),
                "product": torch.tensor(row, dtype=torch.int64),
                "bad_images": torch.tensor(bad + bad_here, dtype=torch.int64),
                "replaced": torch.tensor(attempt, dtype=torch.int64),
                "simple_key": simple.key,
                "complex_key": complex_.key,
                "simple_decoded": torch.tensor(simple.decoded),
                "complex_decoded": torch.tensor(complex_.decoded),
            }
        raise ImageDecodeError(
            f"{MAX_RETRIES} products in a row from {self.index.product_ids[row]} have images "
            "that do not decode; is the image store corrupt?"
        )

    def _pair(self, row: int, rng: np.random.Generator) -> tuple[_Image, _Image, int, int]:
        """(simple, complex, condition, images that did not decode) of product ``row``.

        The draws from ``rng`` come in one order whatever is decoded: the order in which the
        SIMPLE and the COMPLEX images are tried, the condition, then each image's view (or,
        drawn afresh, its augmentation)."""
        simple_rows, complex_rows = self.index.simple_rows(row), self.index.complex_rows(row)
        simple_order = rng.permutation(len(simple_rows))
        complex_order = rng.permutation(len(complex_rows))
        cond = -1
        if isinstance(self.conditions, TextConditions):  # one of its captions, at random
            start, stop = self.conditions.start[row], self.conditions.start[row + 1]
            cond = int(self.conditions.rows[start + int(rng.integers(stop - start))])
        elif self.conditions is not None:
            cond = int(self.conditions[row])
        simple_view, complex_view = self._view(rng), self._view(rng)
        simple = self._image(simple_rows, simple_order, simple_view, rng)
        complex_ = self._image(complex_rows, complex_order, complex_view, rng)
        return simple, complex_, cond, simple.bad + complex_.bad

    def _view(self, rng: np.random.Generator) -> int:
        """The view an image shows: 0 (itself) to ``views - 1``; 0 without fixed views."""
        return int(rng.integers(self.views)) if self.views and self.augment_cfg.enabled else 0

    def _image(self, rows: range, order: np.ndarray, view: int, rng: np.random.Generator) -> _Image:
        """The first image of ``rows`` in ``order`` that is known or decodes, as trained on."""
        bad = 0
        for k in order:
            image_row = rows[int(k)]
            data = self.index.read(image_row)
            key = view_key(data, image_row, view) if self.fixed_views else b""
            if key and self.known is not None and key in self.known:
                return _Image(self._blank(), key, False, bad)
            try:
                img = open_image(data)
            except ImageDecodeError:
                bad += 1
                continue
            return _Image(self._augmented(img, image_row, view, rng), key, True, bad)
        raise _Undecodable(bad)

    def _augmented(
        self, img: Image.Image, image_row: int, view: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The image as trained on: freshly augmented (``views == 0``), or view ``view`` of its
        fixed views — view 0 the image itself, view ``v`` the augmentation drawn from
        ``(seed, image row, v)``, the same in every epoch and for every product showing it."""
        cfg = self.augment_cfg
        if self.views == 0 or not cfg.enabled:
            return augment(img, cfg, rng)
        if view == 0:
            return augment(img, replace(cfg, enabled=False), rng)
        return augment(img, cfg, np.random.default_rng((self.seed, image_row, view)))

    def _blank(self) -> np.ndarray:
        size = self.augment_cfg.size
        return np.zeros((3, size, size), dtype=np.uint8)


def view_key(data: bytes, image_row: int, view: int) -> bytes:
    """The key of view ``view`` of the image whose encoded bytes are ``data`` at row
    ``image_row`` of the packed split: a 128-bit digest of the bytes and the view, and of the
    row for an augmented view (view 0, the image itself, is the same wherever it is stored;
    view ``v`` is drawn from the row). Not a digest of pixels, so never equal to one."""
    h = hashlib.blake2b(digest_size=16, person=b"referred-view")
    h.update(f"{view}:{image_row if view else ''}:".encode())
    h.update(data)
    return h.digest()


@dataclass(frozen=True)
class _Image:
    """One image of a sample: its pixels (blank when not decoded), view key, whether it was
    decoded, and how many of the product's images did not decode before it."""

    pixels: np.ndarray
    key: bytes
    decoded: bool
    bad: int


class _Undecodable(Exception):
    def __init__(self, bad: int) -> None:
        super().__init__(f"{bad} images do not decode")
        self.bad = bad


class EpochBatches(torch.utils.data.Sampler):
    """Batches of dataset positions for one process and one epoch (a ``batch_sampler``).

    The epoch's permutation of ``n`` positions comes from ``(seed, epoch)``; it is cut to a
    multiple of ``world_size · batch`` (the tail waits for another epoch), and process ``rank``
    takes every ``world_size``-th position: equal, disjoint shares, like ``DistributedSampler``
    with ``drop_last``. ``start`` skips the batches a resumed run already trained on.

    With ``labels`` (one category code per position) and ``group`` ``k``, the permutation is
    instead :func:`grouped_order`'s: each process's batch is made of runs of ``k`` products of
    one category — in-batch hard negatives for InfoNCE.
    """

    def __init__(
        self,
        n: int,
        batch: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        labels: np.ndarray | None = None,
        group: int = 0,
    ) -> None:
        if group and (labels is None or len(labels) != n):
            raise ValueError("grouped batches need one label per position")
        self.n, self.batch, self.seed, self.epoch = n, batch, seed, epoch
        self.rank, self.world_size, self.start = rank, world_size, start
        self.labels, self.group = labels, group

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch * self.world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.group and self.labels is not None:
            perm = grouped_order(self.labels, self.group * self.world_size, rng)
        else:
            perm = rng.permutation(self.n)
        mine = perm[: self.batches_per_epoch() * self.batch * self.world_size][
            self.rank :: self.world_size
        ]
        for b in range(self.start, self.batches_per_epoch()):
            yield mine[b * self.batch : (b + 1) * self.batch].tolist()


def grouped_order(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(len(labels))`` in runs of ``k`` positions of one label.

    Each label's positions are shuffled and cut into runs of ``k``; what is left of every label
    (fewer than ``k``) is shuffled together and cut into mixed runs; the runs of ``k`` are
    shuffled and the one shorter run, if any, goes last, so every run starts at a multiple of
    ``k`` (batches of a multiple of ``k`` hold whole runs). Every position appears exactly once.
    """
    if k < 1:
        raise ValueError(f"run length must be >= 1, got {k}")
    runs: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        full = len(members) // k * k
        runs += np.split(members[:full], full // k) if full else []
        rest.append(members[full:])
    left = rng.permutation(np.concatenate(rest)) if rest else np.zeros(0, np.int64)
    runs += [left[i : i + k] for i in range(0, len(left) // k * k, k)]
    order = rng.permutation(len(runs))
    tail = left[len(left) // k * k :]  # shorter than k: last, so no later run is shifted
    return np.concatenate([*(runs[i] for i in order), tail]).astype(np.int64)


def normalize_pixels(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 (B, 3, S, S) → float32 normalised, on the images' device."""
    m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s
