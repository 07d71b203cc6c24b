"""Image preprocessing of the released CondViT models: the only place with pad/resize/mean/std.

Reference pipeline (both released checkpoints): pad to a centred square with white
(``left = (max - w) // 2``, ``top = (max - h) // 2``, remainder right/bottom), resize to
``size × size`` with bilinear filtering, scale to [0, 1], normalise with CLIP's mean and std.
No centre crop. Implemented with Pillow and numpy (no torchvision).

Decoding comes first and has two modes (``PreprocessConfig.decode``, see
:mod:`referred.imageio`): ``"default"`` applies EXIF orientation and composites transparency
over white; ``"reference"`` is the authors' plain ``convert("RGB")``, for benchmark parity.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from referred.imageio import ImageSource, Photo, check_decode, decode_image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings that travel with a model (stored in its ``config.json``)."""

    size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    pad_value: int = 255
    resample: str = "bilinear"
    decode: str = "default"  # or "reference": the authors' convert("RGB"), see imageio

    def __post_init__(self) -> None:
        check_decode(self.decode)
        if self.size < 1:
            raise ValueError(f"preprocess size must be a positive integer, got {self.size}")
        if self.resample not in _RESAMPLE:
            raise ValueError(
                f"unknown resample {self.resample!r}; expected one of {sorted(_RESAMPLE)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("preprocess mean and std need 3 values each, std > 0")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        known = {"size", "mean", "std", "pad_value", "resample", "decode"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocess keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def pad_to_square(img: Image.Image, fill: int = 255) -> Image.Image:
    """Centre ``img`` on a square canvas of side ``max(w, h)`` filled with ``fill``."""
    w, h = img.size
    side = max(w, h)
    if w == h:
        return img
    canvas = Image.new("RGB", (side, side), (fill, fill, fill))
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess_image(src: ImageSource, cfg: PreprocessConfig) -> np.ndarray:
    """One image → float32 array of shape (3, size, size), normalised (decoded per
    ``cfg.decode``). A :class:`~referred.imageio.Photo` is preprocessed once per ``cfg``; its
    array is then shared, read-only."""
    if isinstance(src, Photo):
        return src.derived(("pixels", cfg), lambda: _read_only(_preprocess(src.image, cfg)))
    return _preprocess(src, cfg)


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _preprocess(src: ImageSource, cfg: PreprocessConfig) -> np.ndarray:
    img = pad_to_square(decode_image(src, cfg.decode), cfg.pad_value)
    if img.size != (cfg.size, cfg.size):
        img = img.resize((cfg.size, cfg.size), _RESAMPLE[cfg.resample])
    return normalise(np.asarray(img), cfg.mean, cfg.std)


def normalise(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 pixels (H, W, 3) → float32 (3, H, W): ``(x / 255 - mean) / std`` per channel, in
    float32 arithmetic (``x * float32(1/255)``, then subtract, then divide), read from a table
    of the 256 values of each channel: one pass, the same bits as the arithmetic."""
    table = _normalise_table(tuple(map(float, mean)), tuple(map(float, std)))  # (3, 256)
    h, w = rgb.shape[:2]
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        np.take(table[c], rgb[:, :, c], out=out[c])
    return out


@functools.lru_cache(maxsize=16)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    values = np.arange(256, dtype=np.float32)[:, None] * (1.0 / 255.0)  # (256, 1) float32
    table = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # (256, 3)
    return np.ascontiguousarray(table.T)


def preprocess(
    images: ImageSource | Sequence[ImageSource] | Iterable[ImageSource],
    cfg: PreprocessConfig,
) -> torch.Tensor:
    """Images (PIL, paths or encoded bytes; one or many) → float32 tensor (B, 3, size, size)."""
    if isinstance(images, (Photo, Image.Image, str, bytes, bytearray, memoryview)) or hasattr(
        images, "__fspath__"
    ):
        images = [images]  # type: ignore[list-item]
    batch = [preprocess_image(im, cfg) for im in images]  # type: ignore[union-attr]
    if not batch:
        return torch.empty(0, 3, cfg.size, cfg.size)
    return torch.from_numpy(np.stack(batch))
