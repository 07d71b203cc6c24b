"""Decoding images from any source into RGB, with the errors a user can act on.

The single place where bytes, paths and PIL images become ``PIL.Image`` in RGB, in one of two
modes (:data:`DECODE_MODES`):

* ``"default"`` (:func:`open_image`): EXIF orientation applied, transparency composited over
  white, any mode (L, P, RGBA, CMYK, I;16, …) converted. What a shopper's photo needs: a
  sideways phone picture is turned upright, a product PNG cut out on transparency sits on white
  as catalogue images do.
* ``"reference"`` (:func:`open_image_reference`): exactly what the paper authors' training and
  benchmark code do, ``Image.open(...).convert("RGB")``: no EXIF rotation, and an alpha channel
  is dropped (the colours under transparent pixels are kept). For benchmark parity only.

Both refuse truncated files and decompression bombs with :class:`ImageDecodeError`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

T = TypeVar("T")


class Photo:
    """A decoded photo that several calls share, so what they derive from it is computed once.

    One search request asks for the item, whether it is worn and where the model looked: each
    preprocesses the same photo. Wrapped in a Photo, it is preprocessed once per setting
    (:func:`referred.preprocess.preprocess_image` remembers the result here). Decoding,
    preprocessing, the query encoder and the Searcher take a Photo wherever they take an
    image. Read-only by contract: do not draw on ``image`` once wrapped.
    """

    __slots__ = ("_derived", "image")

    def __init__(self, image: Image.Image) -> None:
        if not isinstance(image, Image.Image):
            raise TypeError(f"a Photo wraps a decoded PIL image, got {type(image).__name__}")
        self.image = image
        self._derived: dict[object, object] = {}

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the image."""
        return self.image.size

    def derived(self, key: object, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked, the remembered value afterwards (two
        threads asking at once may both compute it; the values are equal)."""
        try:
            return self._derived[key]  # type: ignore[return-value]
        except KeyError:
            value = self._derived[key] = compute()
            return value


ImageSource = Photo | Image.Image | str | os.PathLike | bytes | bytearray | memoryview

#: Accepted values of every ``decode`` setting.
DECODE_MODES: tuple[str, ...] = ("default", "reference")

#: Largest image accepted, in pixels (about 16k × 16k); beyond it decoding is refused.
MAX_PIXELS = 268_435_456


class ImageDecodeError(ValueError):
    """An image source that cannot be decoded; the message names the source and the reason."""


def _describe(src: ImageSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    return f"<{type(src).__name__}>"


def check_decode(decode: str) -> str:
    """``decode`` if it is one of :data:`DECODE_MODES`, else a ``ValueError`` naming them."""
    if decode not in DECODE_MODES:
        raise ValueError(f"unknown decode mode {decode!r}; expected one of {DECODE_MODES}")
    return decode


def decode_image(
    src: ImageSource, decode: str = "default", max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Decode ``src`` into RGB with the ``decode`` mode (``"default"`` or ``"reference"``)."""
    if check_decode(decode) == "reference":
        return open_image_reference(src, max_pixels)
    return open_image(src, max_pixels)


def open_image(src: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``src`` fully into an RGB ``PIL.Image`` (EXIF orientation, alpha over white).

    Accepts a PIL image (or a :class:`Photo`), a file path, or encoded bytes. Raises
    :class:`ImageDecodeError` for empty, truncated, unidentifiable or oversized inputs, and
    ``FileNotFoundError`` for a path that does not exist.
    """
    if isinstance(src, Photo):
        src = src.image
    if isinstance(src, Image.Image):
        return to_rgb(ImageOps.exif_transpose(src))
    with _opened(src, max_pixels) as img:
        return to_rgb(ImageOps.exif_transpose(img))


def open_image_reference(src: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``src`` as the authors' code does: ``convert("RGB")``, nothing else.

    The result carries no metadata (EXIF included), so a later :func:`open_image` of it (as
    the model's preprocessing does with PIL inputs) cannot rotate it either. Same errors as
    :func:`open_image`.
    """
    if isinstance(src, Photo):
        src = src.image
    if isinstance(src, Image.Image):
        rgb = src.convert("RGB")
    else:
        with _opened(src, max_pixels) as img:
            rgb = img.convert("RGB")
    rgb.info.clear()  # drops "exif" (and with it the orientation) from the converted copy
    return rgb


@contextlib.contextmanager
def _opened(src: ImageSource, max_pixels: int) -> Iterator[Image.Image]:
    """``src`` (a path or bytes) opened and fully loaded, with the errors translated."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        data = path.read_bytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        raise TypeError(
            f"cannot read an image from {type(src).__name__}; "
            "pass a PIL.Image, a path, or encoded image bytes"
        )
    if not data:
        raise ImageDecodeError(f"{_describe(src)}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageDecodeError(
                    f"{_describe(src)}: {w}x{h} pixels exceeds the limit of {max_pixels}"
                )
            img.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
            yield img
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"{_describe(src)}: not a readable image ({exc})") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited over white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode in ("I", "F") and arr.max() <= 255:
            hi = 255.0
        gray = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
