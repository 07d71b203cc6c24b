"""A frozen trunk's feature maps, computed once per distinct input image.

Training: when a hybrid CondViT trains with its trunk frozen (``--trunk-lr-scale 0`` with BatchNorm
frozen), the trunk is a fixed function: the same preprocessed image always gives the same
map. On a CPU that forward is most of a step (EfficientNet-Lite0 at 224 px: ~85–120 ms an
image against ~50 ms for the forward and backward of hybrid-lite0's transformer), so a run
that sees each image many times — epochs, validation, a scene shared by several products —
computes it once per distinct image and reads it back afterwards.

:class:`TrunkMemo` is keyed by the exact bytes of each input image (a 128-bit BLAKE2b digest),
so a hit returns what the trunk computes for that image (to float rounding: a convolution's
result moves in the last bit with the batch an image is computed in); nothing depends on file
names or dataset positions. Augmentation draws from a finite set of views per image
(``--augment-views``, :mod:`referred.train.pairs`) so that augmented images repeat too. The
memo is bounded (``max_bytes``): once full it stops storing and keeps serving what it holds
(``policy="keep"``: a training run's images are all equally likely to come back).

Decoding too: where a training image's pixels are a fixed function of its encoded bytes and
its view (:mod:`referred.train.pairs`: ``--augment-views N >= 1``, or no augmentation), the
loader names each image by a *view key* (:func:`referred.train.pairs.view_key`) instead. The
memo keeps the set of view keys it holds (:attr:`TrunkMemo.known`); the loader neither decodes
nor preprocesses an image whose key is in it, and :meth:`TrunkMemo.given` hands the keys of
the next batch to the memo, which then neither hashes those images nor looks at their (blank)
pixels. Reading, decoding, preprocessing and hashing 128 close-ups and products took ~0.3 s of
a ~1 s step of ``hybrid-lite0-128`` on one CPU thread (docs/benchmarks.md). On a GPU, whose
trunk pass costs less than hashing its input on the host, only a keyed memo is used.

Serving: one photo is often asked for several items (shop-the-look, a shopper trying the
chips one after another); the trunk, ~70% of a query's forward, does not depend on the
condition, so the Searcher keeps the last photos' maps (``policy="lru"``) and a new condition on
the same photo runs only the transformer.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from referred.model.fixed_trunk import FixedTrunk, fixed_reason

log = logging.getLogger(__name__)


@dataclass
class MemoStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    bytes: int = 0
    full: bool = False

    def hit_rate(self) -> float:
        seen = self.hits + self.misses
        return self.hits / seen if seen else 0.0


def image_key(image: torch.Tensor) -> bytes:
    """128-bit digest of one input image's exact bytes (dtype and shape included)."""
    t = image.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


class TrunkMemo:
    """``memo(trunk, images)`` = ``trunk(images)``, computing only the images not seen before.

    Only for a trunk that does not change (not learning, BatchNorm in eval mode): :meth:`check`
    refuses any other. Stored maps live on the CPU. ``policy``: ``"keep"`` (once full, store
    nothing more) or ``"lru"`` (once full, forget the least recently used).
    """

    POLICIES = ("keep", "lru")

    def __init__(self, max_bytes: int, policy: str = "keep") -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if policy not in self.POLICIES:
            raise ValueError(f"unknown memo policy {policy!r}; expected one of {self.POLICIES}")
        self.max_bytes, self.policy = max_bytes, policy
        # key (a digest of the pixels, or a loader's view key) → (rows, slot)
        self.maps: OrderedDict[bytes, tuple[_Rows, int]] = OrderedDict()
        self.known: set[bytes] = set()  # the view keys in ``maps``: images not to decode
        self._rows: dict[tuple, _Rows] = {}  # (shape, dtype) → its rows
        self.stats = MemoStats()
        self.runner = FixedTrunk()  # what is not found: folded, in micro-batches
        self._lock = threading.Lock()
        self._next = threading.local()  # keys handed by given() for this thread's next call

    @staticmethod
    def check(trunk: nn.Module) -> None:
        """Raise ValueError unless ``trunk`` is a fixed function: no parameter that autograd
        could train (frozen, or gradients off as in inference) and BatchNorm in eval mode."""
        reason = fixed_reason(trunk)
        if reason is not None:
            raise ValueError(f"the trunk memo needs a fixed trunk, but {reason}")

    @contextmanager
    def given(
        self, keys: Sequence[bytes] | None, decoded: Sequence[bool] | None = None
    ) -> Iterator[None]:
        """Within: this thread's next call names image ``i`` by ``keys[i]`` when it is not
        empty (a view key, :func:`referred.train.pairs.view_key`), by a digest of its pixels
        otherwise. ``decoded[i]`` false: image ``i``'s pixels are a blank stand-in (its key
        was in :attr:`known` when it was loaded), so its map must be found. ``keys`` ``None``:
        no change."""
        self._next.keys = None if keys is None else (keys, decoded)
        try:
            yield
        finally:
            self._next.keys = None

    def _keys(self, images: torch.Tensor) -> tuple[list[bytes], Sequence[bool], list[bool]]:
        """Each image's key, whether its pixels are real, whether its key is a view key."""
        given = getattr(self._next, "keys", None)
        self._next.keys = None  # for one call only
        if given is None:
            return [image_key(x) for x in images], [True] * len(images), [False] * len(images)
        names, decoded = given
        if len(names) != len(images) or (decoded is not None and len(decoded) != len(images)):
            raise ValueError(f"{len(names)} keys given for a batch of {len(images)} images")
        keys = [bytes(k) if k else image_key(x) for k, x in zip(names, images)]
        return keys, decoded or [True] * len(images), [bool(k) for k in names]

    def __call__(self, trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
        self.check(trunk)
        keys, decoded, named = self._keys(images)
        found: dict[bytes, torch.Tensor] = {}
        first: dict[bytes, int] = {}
        with self._lock:
            for i, k in enumerate(keys):
                if k in self.maps:
                    rows, slot = self.maps[k]
                    found[k] = rows.row(slot).clone()  # under the lock: a freed row is reused
                    if self.policy == "lru":
                        self.maps.move_to_end(k)
                elif not decoded[i]:
                    raise RuntimeError(
                        f"the trunk memo has no map for view key {k.hex()}, whose image the "
                        "loader skipped as memoised: the memo forgot it (a bounded 'lru' memo "
                        "must not serve a loader)"
                    )
                else:
                    first.setdefault(k, i)  # an image twice in one batch is computed once
            missing = list(first.values())
            self.stats.hits += len(keys) - len(missing)
            self.stats.misses += len(missing)
        if missing:
            out = self.runner(trunk, images[missing])  # (m, C, g, g)
            with self._lock:
                for i, m in zip(missing, out):
                    found[keys[i]] = m
                    self._store(keys[i], m, named[i])
        # held maps are on the CPU, new ones where the trunk ran
        return torch.stack([found[k].to(images.device) for k in keys])  # (B, C, g, g)

    def _store(self, key: bytes, m: torch.Tensor, view: bool = False) -> None:  # under the lock
        if key in self.maps:  # another thread stored it meanwhile
            return
        size = m.numel() * m.element_size()
        while self.policy == "lru" and self.maps and self.stats.bytes + size > self.max_bytes:
            old, (rows, slot) = self.maps.popitem(last=False)
            self.known.discard(old)
            rows.release(slot)
            self.stats.stored -= 1
            self.stats.bytes -= rows.row_bytes
        if self.stats.bytes + size > self.max_bytes:
            if not self.stats.full:
                log.warning(
                    "trunk memo full (%.2f GB, %d maps): further images are computed each "
                    "time; raise its size (referred train --trunk-memo-gb) to keep more",
                    self.stats.bytes / 1e9,
                    self.stats.stored,
                )
                self.stats.full = True
            return
        kind = (tuple(m.shape), m.dtype)
        rows = self._rows.get(kind)
        if rows is None:
            rows = self._rows[kind] = _Rows(kind[0], m.dtype, self.max_bytes)
        self.maps[key] = (rows, rows.put(m.detach().cpu()))
        if view:
            self.known.add(key)
        self.stats.stored += 1
        self.stats.bytes += size


class _Rows:
    """Stored maps of one shape and dtype, as rows of large blocks: one allocation per block
    (up to 32 MB), not one per map. One allocation per map (tens of KB each, among the
    trunk's and transformer's transient buffers) fragmented glibc's heap: 12,864 maps of
    128-px images held 1.66 GB for 0.37 GB of maps (``scripts/bench_memo_memory.py``), and
    a 128-px training run ~12 GB."""

    BLOCK_BYTES = 32 << 20

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, max_bytes: int) -> None:
        self.shape, self.dtype = shape, dtype
        self.row_bytes = max(math.prod(shape) * dtype.itemsize, 1)
        self.per_block = max(min(self.BLOCK_BYTES, max_bytes) // self.row_bytes, 1)
        self.blocks: list[torch.Tensor] = []
        self.free: list[int] = []  # released slots, reused first
        self.handed = 0  # slots handed out so far

    def put(self, m: torch.Tensor) -> int:
        """Copy ``m`` into a free row; its slot."""
        if self.free:
            slot = self.free.pop()
        else:
            slot, self.handed = self.handed, self.handed + 1
            if slot // self.per_block == len(self.blocks):
                # never an inference tensor, even when the first map of a block comes from
                # validation (run in inference mode): training later writes into it
                with torch.inference_mode(False):
                    block = torch.empty((self.per_block, *self.shape), dtype=self.dtype)
                self.blocks.append(block)
        self.row(slot).copy_(m)
        return slot

    def row(self, slot: int) -> torch.Tensor:
        return self.blocks[slot // self.per_block][slot % self.per_block]

    def release(self, slot: int) -> None:
        self.free.append(slot)


def memo_for(
    model: nn.Module, trunk_lr_scale: float | None, max_gb: float, keyed: bool = False
) -> TrunkMemo | None:
    """A memo for ``model``'s trunk when it is a fixed function during training — a hybrid
    whose trunk is frozen (``trunk_lr_scale == 0``) with frozen BatchNorm — else ``None``.
    On a GPU only when the loader names images by view keys (``keyed``): there the trunk's
    forward costs less than hashing its input on the host; what a memo saves is the
    decoding."""
    config = getattr(model, "config", None)
    if getattr(model, "trunk", None) is None or config is None or max_gb <= 0:
        return None
    if next(model.parameters()).device.type != "cpu" and not keyed:
        return None
    if trunk_lr_scale != 0 or config.trunk_bn != "frozen":
        return None
    return TrunkMemo(int(max_gb * 1e9))
