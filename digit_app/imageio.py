"""Turn whatever a user uploads or draws into one 8-bit grayscale array, or a clear error.

Uploads are untrusted bytes. `decode_image` checks the size before decoding anything,
reads the header only to check the declared dimensions (so a decompression bomb is refused
before a single pixel is unpacked), then decodes fully inside a guard so that a truncated or
corrupt file becomes an `ImageError` with a message a person can act on, never a traceback.

Every supported mode (1, L, P, RGB, RGBA, LA, I;16, I, F, CMYK, ...) ends up as (H, W) uint8
grayscale with the EXIF orientation applied. Transparency is composited: onto white by
default, or onto a contrasting colour when the drawing lives only in the alpha channel (a
constant-coloured stroke on a transparent background), so the ink always stays visible.

`canvas_to_gray` does the same for the RGBA array of the drawing canvas, returning white
ink on black, the polarity MNIST uses.
"""

from __future__ import annotations

import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digit_app.config import Settings, get_settings

# Formats we decode; anything else Pillow knows (PSD, EPS, ...) is refused: less attack surface.
# Not PPM/PGM/PBM (never offered): Pillow parses them in Python, and 20 MB of comments in a
# plain (ASCII) one take it hours (tests/test_fuzz.py, comments.pgm).
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF", "WEBP", "GIF")  # JPEG covers MPO
FORMAT_NAMES = "PNG, JPEG, BMP, TIFF, WebP or GIF"
# A side shorter than this cannot hold a recognisable digit (MNIST itself is 28 px, semeion 16 px).
MIN_SIDE = 8
# Larger decoded images are shrunk to this longer side: plenty for digits, bounded memory.
MAX_WORK_SIDE = 2048
# Each scan of a progressive JPEG is a pass over the whole image, and libjpeg sets no limit:
# a 1 MB file of 8,000 scans declaring 6300x6300 pixels takes 30 s of CPU, 20 MB of them
# many minutes. Real files have about 10 (a few dozen with custom scan scripts).
MAX_JPEG_SCANS = 150
# Pillow reads a JPEG's marker segments one by one in Python: 5 million empty ones (20 MB)
# take it 8 s and 300 MB before a pixel is decoded. Real files have a few dozen.
MAX_JPEG_SEGMENTS = 10_000
# High bit-depth and transparent images are converted this many pixels at a time: float copies
# of a whole 40-megapixel image would need well over a gigabyte.
_BLOCK_PIXELS = 1 << 20
# Below this alpha-weighted spread of the colour (0..255), the colour carries no drawing and
# the ink is the alpha channel alone.
_FLAT_COLOUR_STD = 12.0


class ImageError(ValueError):
    """The upload is not an image we can read; the message says why, in plain words."""


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def decode_image(data: bytes, name: str = "upload", settings: Settings | None = None) -> np.ndarray:
    """Decode uploaded bytes into (H, W) uint8 grayscale; raise ImageError for anything unusable."""
    settings = settings or get_settings()
    if data is None or len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes). Choose an image file ({FORMAT_NAMES}).")
    if len(data) > settings.max_upload_bytes:
        raise ImageError(
            f"{name} is too large ({_human_bytes(len(data))}); the limit is "
            f"{_human_bytes(settings.max_upload_bytes)}. Crop or shrink the image and try again."
        )
    with warnings.catch_warnings():
        # Pillow warns (and above twice its limit raises) on decompression bombs: make both errors.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        raw = bytes(data)
        if raw[:3] == b"\xff\xd8\xff" and (overload := _jpeg_overload(raw)):  # what Pillow takes for a JPEG
            raise ImageError(
                f"{name} is damaged or made to overload the decoder: a JPEG with {overload}. "
                "Save or export it again and re-upload it."
            )
        try:
            img = Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image we can read. Upload a {FORMAT_NAMES} file.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                f"{name} declares an enormous image (a possible decompression bomb); "
                f"the limit is {settings.max_image_pixels:,} pixels."
            ) from None
        except Exception as exc:  # noqa: BLE001 - a broken header can raise almost anything
            raise ImageError(f"{name} is damaged and cannot be read ({_reason(exc)}).") from None
        with img:
            width, height = img.size
            if width * height > settings.max_image_pixels:
                raise ImageError(
                    f"{name} is too large: {width}x{height} pixels; the limit is "
                    f"{settings.max_image_pixels:,} pixels. Shrink the image and try again."
                )
            if min(width, height) < MIN_SIDE:
                raise ImageError(
                    f"{name} is too small ({width}x{height} pixels) to hold a digit; "
                    f"it needs at least {MIN_SIDE}x{MIN_SIDE} pixels."
                )
            try:
                img.seek(0)  # animated GIF/WebP/TIFF: the first frame
                img.load()
                img = _oriented(img)
                return _to_gray(img)
            except ImageError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageError(
                    f"{name} expands to an enormous image (a possible decompression bomb); "
                    f"the limit is {settings.max_image_pixels:,} pixels."
                ) from None
            except MemoryError:
                raise ImageError(f"{name} needs too much memory to decode.") from None
            except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, ValueError, EOFError, ...
                raise ImageError(
                    f"{name} is truncated or damaged and cannot be decoded ({_reason(exc)}). "
                    "Save or export it again and re-upload it."
                ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text[:120] if text else type(exc).__name__


# A JPEG marker: 0xFF and a code that is not a stuffed 0x00, a restart marker or a fill byte.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_overload(data: bytes) -> str | None:
    """What would make this JPEG cost far more to decode than its size suggests, or None.

    Walks the first image's marker segments as a decoder does: each is skipped by its length
    (a thumbnail inside EXIF is not counted), the entropy-coded data after a scan header is
    searched for the next marker, and the first EOI ends the image (whatever follows it, e.g.
    a motion photo's video, is not looked at). Stops at the first limit exceeded.
    """
    scans, segments, pos = 0, 0, 2
    while (found := _JPEG_MARKER.search(data, pos)) is not None:
        pos, code = found.start(), data[found.start() + 1]
        if code == 0xD9:  # EOI
            break
        scans += code == 0xDA
        segments += 1
        if scans > MAX_JPEG_SCANS:
            return f"more than {MAX_JPEG_SCANS} scans (normal photos have about 10)"
        if segments > MAX_JPEG_SEGMENTS:
            return f"more than {MAX_JPEG_SEGMENTS:,} marker segments (normal photos have a few dozen)"
        pos += 2 if code in (0x01, 0xD8) else 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _oriented(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos); a broken EXIF block is ignored, not fatal."""
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - bad EXIF should not cost the user their image
        return img
    return out if out is not None else img


def _row_blocks(shape: tuple[int, ...]) -> list[slice]:
    """Slices of rows of about _BLOCK_PIXELS pixels, covering an (H, W) image."""
    step = max(1, _BLOCK_PIXELS // max(1, shape[1]))
    return [slice(top, top + step) for top in range(0, shape[0], step)]


def _finite(block: np.ndarray) -> np.ndarray:
    a = np.asarray(block, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def _scale_to_8bit(arr: np.ndarray) -> np.ndarray:
    """High bit-depth or float (H, W) pixels -> 0..255 by the image's own range (no clipping at 255).

    Block by block (see _BLOCK_PIXELS); non-finite values count as 0.
    """
    arr = np.asarray(arr)
    blocks = _row_blocks(arr.shape)
    lo = min(min(float(_finite(arr[rows]).min()) for rows in blocks), 0.0)
    hi = max(float(_finite(arr[rows]).max()) for rows in blocks) - lo
    out = np.zeros(arr.shape, np.uint8)
    if hi <= 0:
        return out
    if arr.dtype.kind == "f" and lo == 0.0 and hi <= 1.0:
        hi = 1.0  # a float image already in 0..1
    for rows in blocks:
        out[rows] = np.clip(np.round((_finite(arr[rows]) - lo) * (255.0 / hi)), 0, 255)
    return out


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (what Pillow's convert('L') uses), as float 0..255."""
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W) uint8, alpha composited so the ink stays visible."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F", "I;32", "I;32B", "I;32L"):
        arr = np.asarray(img)
        if arr.ndim != 2:
            arr = np.asarray(img.convert("I"))
        return _shrunk(_scale_to_8bit(arr))
    if mode in ("L", "1"):
        return _shrunk(np.array(img.convert("L"), dtype=np.uint8))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        if mode not in ("RGBA", "LA"):
            img = img.convert("RGBA")
        gray = np.asarray(img.convert("L"), dtype=np.uint8)  # Pillow's own ITU-R 601 luma, in C
        alpha = np.asarray(img.getchannel("A"), dtype=np.uint8)
        return _shrunk(composite_alpha(gray, alpha))
    if mode not in ("RGB", "P"):  # CMYK, YCbCr, LAB, HSV, ...
        img = img.convert("RGB")
    return _shrunk(np.array(img.convert("L"), dtype=np.uint8))


def _shrunk(gray: np.ndarray) -> np.ndarray:
    """Huge photos are reduced (area-averaged) so that the longer side is MAX_WORK_SIDE."""
    h, w = gray.shape
    if max(h, w) <= MAX_WORK_SIDE:
        return gray
    f = MAX_WORK_SIDE / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def composite_alpha(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten grayscale + alpha onto a background that keeps the drawing visible.

    Normally onto white (like a browser shows a transparent PNG on a page). When the colour
    is the same everywhere the image is visible, the drawing is in the alpha channel only;
    then the background is the opposite of that colour (white ink -> black background).
    A fully transparent or fully opaque alpha channel carries nothing and is ignored.
    Computed block by block (see _BLOCK_PIXELS).
    """
    gray, alpha = np.asarray(gray), np.asarray(alpha)
    blocks = _row_blocks(gray.shape)

    def g_a(rows: slice) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(gray[rows], dtype=np.float32), np.asarray(alpha[rows], dtype=np.float32) / 255.0

    out = np.empty(gray.shape, np.uint8)
    if float(alpha.min()) / 255.0 >= 1.0 or float(alpha.max()) <= 0.0:
        for rows in blocks:
            out[rows] = np.clip(np.round(g_a(rows)[0]), 0, 255)
        return out
    w = sum(float(a.sum()) for _, a in map(g_a, blocks))
    mean = sum(float((g * a).sum()) for g, a in map(g_a, blocks)) / w
    var = sum(float(((g - mean) ** 2 * a).sum()) for g, a in map(g_a, blocks)) / w
    std = float(np.sqrt(max(var, 0.0)))
    background = 255.0
    if std < _FLAT_COLOUR_STD and mean >= 128:
        background = 0.0  # light strokes on a transparent background: show them on black
    for rows in blocks:
        g, a = g_a(rows)
        out[rows] = np.clip(np.round(g * a + background * (1.0 - a)), 0, 255)
    return out


def canvas_to_gray(rgba: np.ndarray) -> np.ndarray:
    """The drawing canvas's RGBA (H, W, 4) -> (H, W) uint8 with bright ink on black.

    Works for both ways a canvas can be set up: an opaque background with strokes of another
    colour (polarity found from the border), or a transparent background, where the ink is
    exactly the alpha channel whatever colour the strokes are. RGB (H, W, 3) and grayscale
    (H, W) arrays are accepted as opaque. Raises ImageError for anything else.
    """
    if rgba is None:
        raise ImageError("The canvas sent no image data.")
    arr = np.asarray(rgba)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageError(f"The canvas image has an unexpected shape {arr.shape}; expected (H, W, 4).")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"The canvas image is empty (shape {arr.shape}).")
    if arr.dtype.kind == "f":
        arr = np.clip(np.nan_to_num(arr), 0, 1 if float(arr.max(initial=0)) <= 1.0 else 255)
        arr = arr * (255.0 if float(arr.max(initial=0)) <= 1.0 else 1.0)
    elif arr.dtype.kind not in "uib":
        raise ImageError(f"The canvas image has an unexpected data type {arr.dtype}.")
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3]
        if alpha.min() < 255:  # transparent background: the strokes are the alpha channel
            if alpha.max() == 0:
                return np.zeros(alpha.shape, np.uint8)
            return alpha.copy()
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 3:
        gray = np.clip(np.round(_luminance(arr)), 0, 255).astype(np.uint8)
    else:
        gray = arr.reshape(arr.shape[0], arr.shape[1])
    if _border_level(gray) >= 128:  # dark strokes on a light background
        gray = 255 - gray
    return gray


def _border_level(gray: np.ndarray) -> float:
    """Median of the outermost rows and columns: the background of a canvas or scan."""
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    return float(np.median(border))
