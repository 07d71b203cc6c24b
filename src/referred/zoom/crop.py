"""Close-ups: the square window around a located box, cut from a photo or from its pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from referred.zoom.boxes import close_up_window, from_square


def close_up(image: Image.Image, frac: Sequence[float], grow: float) -> Image.Image:
    """The close-up of ``image`` (decoded, as the shopper sent it) around the box ``frac``
    (``(cx, cy, w, h)`` fractions of its padded square): full resolution, so a small item
    keeps every pixel the photo has of it."""
    window = close_up_window(from_square(frac, image.size), image.size, grow)
    return image.crop(window)


def zoom_pixels(pixels: torch.Tensor, boxes: torch.Tensor, grow: float) -> torch.Tensor:
    """Preprocessed squares (B, 3, R, R) → the close-ups around ``boxes`` (B, 4) (fractions
    of the square), each resized back to (3, R, R) (bilinear). For callers that hold only
    pixels; :func:`close_up` of the photo itself is sharper."""
    r = pixels.shape[-1]
    out = torch.empty_like(pixels)
    for i, frac in enumerate(boxes.tolist()):
        left, top, right, bottom = close_up_window(from_square(frac, (r, r)), (r, r), grow)
        window = pixels[i : i + 1, :, top:bottom, left:right]
        out[i] = F.interpolate(window, size=(r, r), mode="bilinear", align_corners=False)[0]
    return out
