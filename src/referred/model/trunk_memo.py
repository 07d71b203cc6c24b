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
        self.maps: OrderedDict[bytes, tuple[_Rows, int]] = OrderedDict()  # key → (rows, slot)
        self._rows: dict[tuple, _Rows] = {}  # (shape, dtype) → its rows
        self.stats = MemoStats()
        self.runner = FixedTrunk()  # what is not found: folded, in micro-batches
        self._lock = threading.Lock()

    @staticmethod
    def check(trunk: nn.Module) -> None:
        """Raise ValueError unless ``trunk`` is a fixed function: no parameter that autograd
        could train (frozen, or gradients off as in inference) and BatchNorm in eval mode."""
        reason = fixed_reason(trunk)
        if reason is not None:
            raise ValueError(f"the trunk memo needs a fixed trunk, but {reason}")

    def __call__(self, trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
        self.check(trunk)
        keys = [image_key(x) for x in images]
        found: dict[bytes, torch.Tensor] = {}
        first: dict[bytes, int] = {}
        with self._lock:
            for i, k in enumerate(keys):
                if k in self.maps:
                    rows, slot = self.maps[k]
                    found[k] = rows.row(slot).clone()  # under the lock: a freed row is reused
                    if self.policy == "lru":
                        self.maps.move_to_end(k)
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
                    self._store(keys[i], m)
        rows = [found[k] for k in keys]
        return torch.stack(rows).to(images.device)  # (B, C, g, g)

    def _store(self, key: bytes, m: torch.Tensor) -> None:  # under the lock
        if key in self.maps:  # another thread stored it meanwhile
            return
        size = m.numel() * m.element_size()
        while self.policy == "lru" and self.maps and self.stats.bytes + size > self.max_bytes:
            _, (rows, slot) = self.maps.popitem(last=False)
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


def memo_for(model: nn.Module, trunk_lr_scale: float | None, max_gb: float) -> TrunkMemo | None:
    """A memo for ``model``'s trunk when it is a fixed function during training — a hybrid
    whose trunk is frozen (``trunk_lr_scale == 0``) with frozen BatchNorm, on the CPU — else
    ``None``. On a GPU the trunk's forward costs less than hashing its input on the host."""
    config = getattr(model, "config", None)
    if getattr(model, "trunk", None) is None or config is None or max_gb <= 0:
        return None
    if next(model.parameters()).device.type != "cpu":
        return None
    if trunk_lr_scale != 0 or config.trunk_bn != "frozen":
        return None
    return TrunkMemo(int(max_gb * 1e9))
