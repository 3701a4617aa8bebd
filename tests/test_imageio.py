"""Uploads of every format and mode decode to grayscale; every bad upload is a clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from digit_app.config import Settings
from digit_app.imageio import ImageError, canvas_to_gray, composite_alpha, decode_image


def _digit(h: int = 40, w: int = 30) -> np.ndarray:
    """Dark bar (ink) on white paper; the bar is off-centre so rotations can be told apart."""
    a = np.full((h, w), 255, np.uint8)
    a[5:30, 4:10] = 0
    return a


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares the given size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def _check_ink(gray: np.ndarray, lossy: bool = False) -> None:
    assert gray.dtype == np.uint8 and gray.shape == (40, 30)
    tol = 40 if lossy else 2
    assert gray[15, 6] <= tol, "ink should stay dark"
    assert gray[35, 25] >= 255 - tol, "paper should stay light"


# --- formats and modes ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"])
def test_every_format_decodes(fmt):
    img = Image.fromarray(_digit()).convert("RGB")
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    _check_ink(decode_image(_encode(img, fmt, **kw)), lossy=fmt in ("JPEG", "WEBP"))


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK"])
def test_every_mode_decodes(mode):
    img = Image.fromarray(_digit()).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    _check_ink(decode_image(_encode(img, fmt)))


def test_sixteen_bit_is_scaled_by_its_own_maximum():
    # 12-bit data in a 16-bit PNG (max 4000): clipping at 255 would make everything white.
    a = (_digit().astype(np.uint32) * 4000 // 255).astype(np.uint16)
    a[a == 0] = 100
    gray = decode_image(_encode(Image.fromarray(a), "PNG"))
    assert gray.max() == 255 and gray[15, 6] < 10
    _check_ink(gray, lossy=True)


def test_32_bit_integer_and_float_images():
    a = _digit().astype(np.int32) * 1000
    _check_ink(decode_image(_encode(Image.fromarray(a), "TIFF")))
    f = _digit().astype(np.float32) / 255.0
    _check_ink(decode_image(_encode(Image.fromarray(f, mode="F"), "TIFF")))


def test_gif_first_frame():
    first = Image.fromarray(_digit()).convert("P")
    second = Image.fromarray(255 - _digit()).convert("P")
    data = _encode(first, "GIF", save_all=True, append_images=[second])
    _check_ink(decode_image(data))


def test_exif_orientation_is_applied():
    img = Image.fromarray(_digit()).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    gray = decode_image(_encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    expected = np.rot90(_digit(), k=-1)
    assert gray.shape == expected.shape == (30, 40)
    assert np.abs(gray.astype(int) - expected).mean() < 8


def test_broken_exif_does_not_lose_the_image():
    img = Image.fromarray(_digit()).convert("RGB")
    gray = decode_image(_encode(img, "JPEG", quality=95, exif=b"Exif\x00\x00garbage"))
    _check_ink(gray, lossy=True)


# --- transparency --------------------------------------------------------------------------


def test_transparent_png_with_dark_ink_goes_onto_white():
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[..., 3] = 255 - _digit()  # black ink, only in alpha
    _check_ink(decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG")))


def test_white_ink_only_in_alpha_goes_onto_black():
    rgba = np.full((40, 30, 4), 255, np.uint8)
    rgba[..., 3] = 255 - _digit()  # white strokes on a transparent background
    gray = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert gray[15, 6] == 255 and gray[35, 25] == 0


def test_opaque_alpha_is_ignored_and_coloured_content_goes_onto_white():
    g = _digit().astype(np.float32)
    assert (composite_alpha(g, np.full(g.shape, 255, np.uint8)) == _digit()).all()
    alpha = np.full(g.shape, 255, np.uint8)
    alpha[:, 25:] = 0  # transparent margin around a real picture
    out = composite_alpha(g, alpha)
    assert out[15, 6] == 0 and out[5, 28] == 255


def test_palette_with_transparency():
    img = Image.fromarray(_digit()).convert("P")
    img.info["transparency"] = int(np.asarray(img)[35, 25])  # paper index transparent
    gray = decode_image(_encode(img, "PNG", transparency=img.info["transparency"]))
    _check_ink(gray)


# --- bad uploads ---------------------------------------------------------------------------


def _error(data: bytes, settings: Settings | None = None) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, "digit.png", settings=settings)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_zero_bytes():
    assert "empty" in _error(b"")


def test_not_an_image():
    msg = _error(b"%PDF-1.4 this is a text document, not a picture")
    assert "not an image" in msg and "digit.png" in msg


def test_truncated_png():
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), "PNG")
    assert "truncated" in _error(data[: len(data) // 2]) or "damaged" in _error(data[: len(data) // 2])


def test_truncated_jpeg():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    data = _encode(img, "JPEG")
    msg = _error(data[:400])
    assert "truncated" in msg or "damaged" in msg


def test_corrupt_png_data():
    data = bytearray(_encode(Image.fromarray(_digit()), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 20] = b"\xff" * 12  # garbage in the compressed stream
    msg = _error(bytes(data))
    assert "damaged" in msg or "truncated" in msg


def test_enormous_declared_dimensions():
    msg = _error(_png_claiming(100_000, 100_000))
    assert "enormous" in msg or "too large" in msg


def test_too_many_pixels_checked_before_decoding():
    msg = _error(_png_claiming(7_000, 7_000))  # 49 M pixels, under Pillow's own limit
    assert "too large" in msg and "7000x7000" in msg


def test_decompression_bomb():
    # 3000x3000 of zeros compresses to a few kilobytes; the limit here is 1 M pixels.
    data = _encode(Image.new("L", (3000, 3000)), "PNG")
    assert len(data) < 50_000
    assert "too large" in _error(data, Settings(max_image_pixels=1_000_000))


def test_too_many_bytes():
    data = _encode(Image.fromarray(_digit()), "PNG")
    assert "too large" in _error(data, Settings(max_upload_bytes=100))


def test_degenerate_sizes():
    assert "too small" in _error(_encode(Image.new("L", (5, 100), 255), "PNG"))
    assert "too small" in _error(_encode(Image.new("L", (1, 1), 255), "PNG"))
    assert decode_image(_encode(Image.new("L", (8, 8), 255), "PNG")).shape == (8, 8)


def test_unsupported_format_is_refused():
    assert "not an image" in _error(_encode(Image.fromarray(_digit()), "PCX"))


def test_huge_photo_is_shrunk():
    data = _encode(Image.new("L", (3000, 1500), 255), "PNG")
    assert decode_image(data).shape == (1024, 2048)


# --- drawing canvas ------------------------------------------------------------------------


def test_canvas_black_background_white_strokes():
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[10:40, 20:26, :3] = 255
    gray = canvas_to_gray(rgba)
    assert gray[20, 22] == 255 and gray[0, 0] == 0


def test_canvas_transparent_background_ink_in_alpha():
    rgba = np.zeros((50, 50, 4), np.uint8)  # strokes black, background transparent
    rgba[10:40, 20:26, 3] = 255
    gray = canvas_to_gray(rgba)
    assert gray[20, 22] == 255 and gray[0, 0] == 0


def test_canvas_white_background_dark_strokes_is_inverted():
    rgba = np.full((50, 50, 4), 255, np.uint8)
    rgba[10:40, 20:26, :3] = 0
    gray = canvas_to_gray(rgba)
    assert gray[20, 22] == 255 and gray[0, 0] == 0


def test_canvas_empty_and_bad_shapes():
    assert canvas_to_gray(np.zeros((20, 20, 4), np.uint8)).max() == 0
    for bad in (np.zeros((20, 20, 2), np.uint8), np.zeros(20, np.uint8), np.zeros((0, 5, 4), np.uint8)):
        with pytest.raises(ImageError):
            canvas_to_gray(bad)
    with pytest.raises(ImageError):
        canvas_to_gray(None)
