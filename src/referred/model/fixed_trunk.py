"""A hybrid's trunk when it is a fixed function, run as fast as the device allows.

A trunk is *fixed* when nothing can change what it computes during the call: no parameter that
autograd could train (frozen, or gradients off as in inference), BatchNorm in eval mode, and
no gradient asked of the input. That is the case in every inference path (search, embedding,
validation) and in training with the trunk frozen (``--trunk-lr-scale 0``).

Then :class:`FixedTrunk` runs, instead of the trunk itself, its folded copy (BatchNorm folded
into the convolutions: ``trunk.folded()`` where the trunk has one), rebuilt whenever the
trunk's parameters or buffers change (their identity, version, dtype or device), and on the
CPU in micro-batches of :data:`MICRO_BATCH` images. EfficientNet's expanded activations are
4.8 MB an image at 224 px, so a batch of 16 or 64 streams every layer through memory while
one of 2 stays in cache: on one AVX2 thread 13.9 images/s at batch 16 and 7.4 at batch 64,
against 28 at batch 1–4 and ~38 folded (docs/benchmarks.md, "The frozen trunk").
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn.modules import module as _module

#: Images per trunk call on the CPU (1–4 measured alike, 8 already 1.6× slower an image).
MICRO_BATCH = 2


def fixed_reason(trunk: nn.Module, images: torch.Tensor | None = None) -> str | None:
    """Why ``trunk`` is not a fixed function right now (None when it is)."""
    grad = torch.is_grad_enabled()
    if grad and any(p.requires_grad for p in trunk.parameters()):
        return "a trunk parameter requires grad"
    if any(m.training for m in batchnorms(trunk)):
        return "the trunk's BatchNorm is in training mode"
    if grad and images is not None and images.requires_grad:
        return "a gradient is asked of the images"
    return None


# A trunk's BatchNorm layers, found once (walking ~150 modules cost 0.37 ms a call, three calls a
# search): kept until any module anywhere registers a submodule (torch's global hook), which is
# how a BatchNorm could join a trunk.
_structure = [0]
_batchnorms: weakref.WeakKeyDictionary[nn.Module, tuple[int, tuple[nn.Module, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _structure_changed(*_: object) -> None:
    _structure[0] += 1


_module.register_module_module_registration_hook(_structure_changed)


def batchnorms(trunk: nn.Module) -> tuple[nn.Module, ...]:
    """The BatchNorm layers of ``trunk`` (itself included), remembered while its structure
    cannot have changed."""
    known = _batchnorms.get(trunk)
    if known is not None and known[0] == _structure[0]:
        return known[1]
    found = tuple(m for m in trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    _batchnorms[trunk] = (_structure[0], found)
    return found


def _signature(trunk: nn.Module) -> tuple:
    tensors = [*trunk.parameters(), *trunk.buffers()]
    return tuple((id(t), t._version, t.dtype, t.device) for t in tensors)


class FixedTrunk:
    """``runner(trunk, images)`` = ``trunk(images)`` for a fixed trunk, without autograd,
    through its folded copy and, on the CPU, in micro-batches. Raises ValueError for a trunk
    that is not fixed (:func:`fixed_reason`)."""

    def __init__(self, micro_batch: int = MICRO_BATCH) -> None:
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be a positive integer, got {micro_batch}")
        self.micro_batch = micro_batch
        self._source: tuple | None = None
        self._folded: nn.Module | None = None

    def folded(self, trunk: nn.Module) -> nn.Module:
        """The trunk's folded copy (``trunk`` itself when it has no ``folded``), kept until
        the trunk changes."""
        signature = _signature(trunk)
        if self._folded is None or signature != self._source:
            fold = getattr(trunk, "folded", None)
            self._folded = fold() if callable(fold) else trunk
            self._source = signature
        return self._folded

    def __call__(self, trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
        reason = fixed_reason(trunk, images)
        if reason is not None:
            raise ValueError(f"the trunk is not a fixed function here: {reason}")
        net = self.folded(trunk)
        k = self.micro_batch if images.device.type == "cpu" else max(len(images), 1)
        with torch.no_grad():
            if len(images) <= k:
                return net(images)
            return torch.cat([net(images[i : i + k]) for i in range(0, len(images), k)])
