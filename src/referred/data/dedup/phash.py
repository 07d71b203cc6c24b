"""A 64-bit perceptual hash (DCT pHash), written with Pillow and numpy only.

An image is decoded to grey (JPEGs at a reduced scale, which is what makes hashing ~1 ms an
image), reduced to 32 × 32 by box averaging, and transformed with a 2-D DCT-II. The hash keeps
the sign, relative to their median, of the 64 lowest-frequency AC coefficients (ordered by
``u + v``, then ``u``): one bit each, coefficient ``i`` in bit ``i`` of a ``uint64``. The DC
term (mean brightness) is left out, so a brightness shift changes nothing, and the median
threshold makes a contrast change (a scale of every AC coefficient) change nothing either.
Re-encoding, resizing and colour jitter move few low frequencies across the median; a crop
of a few percent shifts the content and moves a few more (docs/data.md, "Near-duplicates").
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from referred.imageio import ImageDecodeError, ImageSource

#: Side of the grey thumbnail the DCT is taken of.
SIDE = 32
#: Bits in a hash.
BITS = 64


def _dct_matrix(n: int) -> np.ndarray:
    """(n, n) DCT-II basis: ``D[k, x] = cos(pi (2x + 1) k / 2n)`` (unnormalised: the hash
    compares coefficients of the same rows, so per-row scales cancel except for the DC row,
    which is not used)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * n))


def _low_frequencies(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the ``count`` lowest AC frequencies, ordered by ``u + v`` then ``u``."""
    cells = sorted(
        ((u, v) for u in range(SIDE) for v in range(SIDE) if (u, v) != (0, 0)),
        key=lambda c: (c[0] + c[1], c[0]),
    )[:count]
    return np.array([c[0] for c in cells]), np.array([c[1] for c in cells])


_DCT = _dct_matrix(SIDE)
_U, _V = _low_frequencies(BITS)
_WEIGHTS = (np.uint64(1) << np.arange(BITS, dtype=np.uint64)).astype(np.uint64)


def hash_thumbnails(grey: np.ndarray) -> np.ndarray:
    """pHashes of grey thumbnails.

    grey: (B, 32, 32) array of any real dtype (pixel values). Returns (B,) uint64.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 3 or grey.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"expected (B, {SIDE}, {SIDE}) grey thumbnails, got shape {grey.shape}")
    coeffs = np.einsum("ux,bxy,vy->buv", _DCT, grey, _DCT, optimize=True)  # (B, 32, 32)
    low = coeffs[:, _U, _V]  # (B, 64)
    bits = low > np.median(low, axis=1, keepdims=True)  # (B, 64) bool
    return (bits.astype(np.uint64) * _WEIGHTS).sum(axis=1, dtype=np.uint64)


def thumbnail(src: ImageSource) -> np.ndarray:
    """The (32, 32) float32 grey thumbnail of ``src`` (a path, encoded bytes or PIL image).

    EXIF orientation is applied and transparency composited over white, as
    :func:`referred.imageio.open_image` does. Raises :class:`ImageDecodeError` (or
    ``FileNotFoundError``) for what cannot be decoded.
    """
    if isinstance(src, Image.Image):
        return _reduce(src)
    if isinstance(src, (str, os.PathLike)):
        if not Path(src).is_file():
            raise FileNotFoundError(f"image file not found: {src}")
        data = Path(src).read_bytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        raise TypeError(
            f"cannot hash an image from {type(src).__name__}; "
            "pass a PIL.Image, a path, or encoded image bytes"
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (2 * SIDE, 2 * SIDE))  # JPEG: decode at 1/2..1/8 scale
            return _reduce(img)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"<{len(data)} bytes>: not a readable image ({exc})") from exc


def _reduce(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    grey = img.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


def phash(src: ImageSource) -> int:
    """The 64-bit pHash of one image, as a Python int (see the module docstring)."""
    return int(hash_thumbnails(thumbnail(src)[None])[0])


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each element of a uint64 array (numpy's ``bitwise_count`` when present)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.uint8)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.uint8)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Hamming distances between uint64 hashes (broadcast)."""
    return popcount(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))
