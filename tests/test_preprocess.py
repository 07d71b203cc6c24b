"""Reference preprocessing: white centred square pad, bilinear resize, CLIP mean/std."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from referred.imageio import ImageDecodeError, Photo, decode_image, open_image
from referred.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    PreprocessConfig,
    normalise,
    preprocess,
    preprocess_image,
)

CFG = PreprocessConfig(size=8)
MEAN, STD = np.array(CLIP_MEAN), np.array(CLIP_STD)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def denorm(t) -> np.ndarray:
    """(3, H, W) normalised → (H, W, 3) in [0, 255]."""
    return (t.numpy().transpose(1, 2, 0) * STD + MEAN) * 255.0


def test_square_image_is_only_normalised():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = preprocess(Image.fromarray(arr), CFG)
    assert out.shape == (1, 3, 8, 8) and out.dtype.is_floating_point
    expected = (arr / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out[0].numpy().transpose(1, 2, 0), expected, atol=1e-6)


@pytest.mark.parametrize("size", [(8, 2), (2, 8), (7, 4)])
def test_pad_is_white_and_centred_with_remainder_right_bottom(size):
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)  # black image → the pad is what is white
    out = denorm(preprocess(Image.fromarray(arr), PreprocessConfig(size=max(size)))[0])
    side = max(w, h)
    left, top = (side - w) // 2, (side - h) // 2
    mask = np.zeros((side, side), bool)
    mask[top : top + h, left : left + w] = True
    np.testing.assert_allclose(out[mask], 0.0, atol=1e-3)
    np.testing.assert_allclose(out[~mask], 255.0, atol=1e-3)


def test_resize_is_bilinear_after_padding():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    canvas = np.full((50, 50, 3), 255, np.uint8)
    canvas[10:40] = arr  # top = (50 - 30) // 2
    expected = Image.fromarray(canvas).resize((8, 8), Image.Resampling.BILINEAR)
    out = denorm(preprocess(Image.fromarray(arr), CFG)[0])
    np.testing.assert_allclose(out, np.asarray(expected, np.float64), atol=1e-3)


def test_one_pixel_image():
    out = denorm(preprocess(Image.new("RGB", (1, 1), (10, 20, 30)), CFG)[0])
    np.testing.assert_allclose(out[0, 0], [10, 20, 30], atol=1e-3)


@pytest.mark.parametrize(
    "mode, make",
    [
        ("L", lambda: Image.new("L", (4, 4), 100)),
        ("P", lambda: Image.new("RGB", (4, 4), (100, 100, 100)).convert("P")),
        ("RGBA", lambda: Image.new("RGBA", (4, 4), (100, 100, 100, 255))),
        ("CMYK", lambda: Image.new("RGB", (4, 4), (100, 100, 100)).convert("CMYK")),
        ("I;16", lambda: Image.fromarray(np.full((4, 4), 100 * 257, np.uint16))),
    ],
)
def test_any_mode_becomes_rgb(mode, make):
    img = make()
    assert img.mode == mode
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    for src in (img, encode(img, fmt)):
        out = denorm(preprocess(src, PreprocessConfig(size=4))[0])
        np.testing.assert_allclose(out, 100.0, atol=2.5)  # JPEG/CMYK round trips are lossy


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = denorm(preprocess(img, PreprocessConfig(size=4))[0])
    np.testing.assert_allclose(out, 255.0, atol=1e-3)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (6, 2), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 3, 2))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=100)
    shown = open_image(data)
    assert shown.size == (2, 6)
    top = np.asarray(shown)[0, 0]
    assert top[2] > 200 and top[0] < 60  # the left (blue) half is now on top


def test_paths_and_bytes_and_batches(tmp_path):
    img = Image.new("RGB", (5, 3), (1, 2, 3))
    p = tmp_path / "a.png"
    img.save(p)
    out = preprocess([p, str(p), encode(img), img], CFG)
    assert out.shape == (4, 3, 8, 8)
    assert all(np.allclose(out[0], out[i]) for i in range(1, 4))


@pytest.mark.parametrize(
    "data, msg",
    [(b"", "empty"), (b"not an image at all", "not a readable image")],
)
def test_bad_bytes_are_named(data, msg):
    with pytest.raises(ImageDecodeError, match=msg):
        preprocess(data, CFG)


def test_truncated_jpeg_is_refused():
    data = encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        open_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused():
    data = encode(Image.new("L", (300, 300)))
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        open_image(data, max_pixels=10_000)


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="image file not found"):
        preprocess("/nonexistent/x.jpg", CFG)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown resample"):
        PreprocessConfig(resample="lanczos5")
    with pytest.raises(ValueError, match="unknown preprocess keys"):
        PreprocessConfig.from_dict({"size": 3, "crop": True})


# --- decode="reference": the authors' Image.open(...).convert("RGB"), bit for bit ---------


def rgba_with_alpha() -> bytes:
    """A non-square RGBA PNG: graded alpha, and colours under the transparent pixels."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (9, 14, 4), dtype=np.uint8)
    arr[..., 3] = np.linspace(0, 255, 14, dtype=np.uint8)[None, :]  # 0 (clear) .. 255
    return encode(Image.fromarray(arr, "RGBA"))


def rotated_jpeg() -> bytes:
    """A 12x6 JPEG whose EXIF orientation says "rotate 90° to display"."""
    rng = np.random.default_rng(4)
    img = Image.fromarray(rng.integers(0, 256, (6, 12, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def authors_pipeline(data: bytes, size: int) -> np.ndarray:
    """Their steps written out: convert("RGB"), white square pad, bilinear resize, then the
    normalisation in the float32 arithmetic of ``preprocess`` (so that any difference comes
    from decoding, padding or resizing)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    canvas = canvas.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(canvas, dtype=np.float32) * (1.0 / 255.0)
    arr = (arr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return arr.transpose(2, 0, 1)


@pytest.mark.parametrize("make", [rgba_with_alpha, rotated_jpeg])
def test_reference_decode_equals_the_authors_pipeline_bit_for_bit(make):
    data = make()
    reference = PreprocessConfig(size=8, decode="reference")
    expected = authors_pipeline(data, 8)
    for src in (data, Image.open(io.BytesIO(data))):  # bytes, or an image not yet converted
        np.testing.assert_array_equal(preprocess(src, reference)[0].numpy(), expected)
    default = preprocess(data, PreprocessConfig(size=8))[0].numpy()
    assert np.abs(default - expected).max() > 0.5  # the user-facing default differs here


def test_reference_image_is_not_rotated_again_by_the_default_pipeline():
    """The benchmark decodes, then hands PIL images to the model's default preprocessing."""
    data = rotated_jpeg()
    decoded = decode_image(data, "reference")
    assert decoded.size == (12, 6) and decoded.mode == "RGB"
    plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(decoded), plain)
    again = preprocess(decoded, PreprocessConfig(size=8))[0].numpy()
    np.testing.assert_array_equal(again, authors_pipeline(data, 8))
    assert decode_image(data).size == (6, 12)  # default: turned upright


def test_decode_setting_is_validated_and_travels_with_the_config():
    with pytest.raises(ValueError, match=r"unknown decode mode 'exif'; expected one of"):
        PreprocessConfig(decode="exif")
    with pytest.raises(ValueError, match="'default', 'reference'"):
        decode_image(b"x", "raw")
    cfg = PreprocessConfig(decode="reference")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    legacy = {k: v for k, v in PreprocessConfig().to_dict().items() if k != "decode"}
    assert PreprocessConfig.from_dict(legacy).decode == "default"


@pytest.mark.parametrize("mean,std", [(CLIP_MEAN, CLIP_STD), ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
def test_normalise_table_gives_the_bits_of_the_float32_arithmetic(mean, std):
    values = np.arange(256, dtype=np.uint8)
    every = np.stack([np.roll(values, 85 * c) for c in range(3)], -1).reshape(16, 16, 3)
    rng = np.random.default_rng(5)  # every value in every channel, then a non-square image
    rgb = np.concatenate([every, rng.integers(0, 256, (5, 16, 3), dtype=np.uint8)])
    arithmetic = np.asarray(rgb, dtype=np.float32) * (1.0 / 255.0)
    arithmetic = (arithmetic - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    out = normalise(rgb, mean, std)
    assert out.shape == (3, 21, 16) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arithmetic.transpose(2, 0, 1))


def test_a_photo_is_preprocessed_once_per_setting_and_shared_read_only():
    img = Image.fromarray(np.random.default_rng(6).integers(0, 256, (9, 14, 3), dtype=np.uint8))
    photo = Photo(img)
    assert photo.size == (14, 9)
    first = preprocess_image(photo, CFG)
    np.testing.assert_array_equal(first, preprocess_image(img, CFG))
    assert preprocess_image(photo, CFG) is first and not first.flags.writeable
    other = preprocess_image(photo, PreprocessConfig(size=4))
    assert other.shape == (3, 4, 4)
    np.testing.assert_array_equal(preprocess([photo, img], CFG)[0].numpy(), first)
    np.testing.assert_array_equal(np.asarray(decode_image(photo, "reference")), np.asarray(img))
    with pytest.raises(TypeError, match="wraps a decoded PIL image"):
        Photo(b"not decoded")
