"""Fuzzing the upload path: thousands of generated and damaged files, none may crash or hang.

Every input goes through what the Upload page and the CLI run on an uploaded file:
`decode_image` (with the size and pixel limits of `Settings`), then the preprocessing that
`recognize` does before it asks the model (`crops_for`, as one digit and as many digits).
A subset also goes through the CLI's own `recognize_file` with the real served model.

Allowed outcomes: an (H, W) uint8 image whose preprocessing returns normally, or an
`ImageError` whose message names the file and says in plain words what is wrong. Anything
else fails the test: another exception, the decoder dying (a crash in native code), an input
that takes more than MAX_CPU_SECONDS of CPU or more than MAX_MEMORY_BYTES of memory, or one
that does not finish within HANG_SECONDS.

The inputs come from a seeded generator, the same on every run: first a fixed corpus (every
format and mode we accept, 1x1 and 10000x10 images, truncations of every format, wrong magic
bytes, huge declared dimensions, decompression bombs, formats we refuse, random bytes), then
mutations of real encodings (bit flips, "interesting" integers written over header fields,
truncation, deletion, insertion, duplication, splicing; PNG chunks re-checksummed so that the
damage reaches the decoder). They run in a child process (this file run as a script), which
measures each input's CPU time and peak memory and is watched from here, so that a hang or a
crash in native code is reported with the input's name instead of freezing the test session.

    .venv/bin/python tests/test_fuzz.py 300          # the fast run's inputs, one line each
    .venv/bin/python tests/test_fuzz.py --only 1234  # just input #1234 (to reproduce a failure)

The fast test runs FAST_INPUTS inputs; the slow one runs FULL_INPUTS and writes its figures
to reports/fuzz.json (both write their entry there).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import queue
import random
import resource
import struct
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import PIL
import pytest
from PIL import Image

if __name__ == "__main__":  # run as the worker: the package is beside this folder
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digit_app.config import PROJECT_ROOT, Settings
from digit_app.imageio import MAX_WORK_SIDE, ImageError, decode_image
from digit_app.recognize import crops_for

SEED = 20240601
FAST_INPUTS = 300
FULL_INPUTS = 10_000
# Bounds per input. They are hang guards, not benchmarks: CPU time (not wall time, which a
# loaded machine stretches) of decoding and preprocessing, and the peak memory above what the
# worker held before the input. The costliest real input, a 39.7-megapixel RGBA PNG, takes
# about 2 s of CPU (up to 4 s on a busy machine); the hangs found took minutes to hours.
MAX_CPU_SECONDS = 10.0
MAX_MEMORY_BYTES = 2**30
# Wall clock: an input the worker has not finished after this long is a hang.
HANG_SECONDS = 120.0
STARTUP_SECONDS = 600.0  # imports and building the fixed corpus, on a busy machine
# Every valid file and every RECOGNIZE_EVERY-th input also go through the CLI with the model.
RECOGNIZE_EVERY = 25
RECOGNIZE_WALL_SECONDS = 60.0
REPORT = PROJECT_ROOT / "reports" / "fuzz.json"
# Every rejection says one of these (after the file name).
REASONS = ("empty", "too large", "too small", "not an image", "damaged", "truncated", "enormous")
# The largest square image allowed: 6300^2 = 39.7 M pixels, just under the default 40 M.
BIG = 6300
_PROTOCOL = "@fuzz "


@dataclass(frozen=True)
class Case:
    """One input: its file name, bytes, how it was made, and what must happen to it."""

    name: str
    data: bytes
    how: str = ""
    expect: str | None = None  # "decoded", "rejected" or None (either, with a clear message)
    says: tuple[str, ...] = ()  # a rejection's message contains one of these


# =============================================================================================
# Building blocks: images, encoders, hand-made headers
# =============================================================================================


def _paper(text: str, h: int, w: int) -> np.ndarray:
    """Dark strokes on light paper, like a scanned digit."""
    img = np.full((h, w), 235, np.uint8)
    thick = max(2, h // 12)
    cv2.putText(img, text, (max(1, w // 14), int(h * 0.85)), cv2.FONT_HERSHEY_SIMPLEX, h / 34, 25, thick)
    return img


def _photo() -> np.ndarray:
    """Digits on unevenly lit, noisy paper (the adaptive-threshold path)."""
    rng = np.random.default_rng(SEED)
    page = _paper("45", 120, 200).astype(np.float32)
    light = np.linspace(0.55, 1.0, page.shape[1], dtype=np.float32)[None, :]
    return np.clip(page * light + rng.normal(0, 6, page.shape), 0, 255).astype(np.uint8)


def _strip(h: int, w: int) -> np.ndarray:
    """A long thin image with dark marks along it (10000x10 and 10x10000)."""
    img = np.full((h, w), 235, np.uint8)
    if w >= h:
        img[1:-1, 50::97] = 20
    else:
        img[50::97, 1:-1] = 20
    return img


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _zlib_rows(sections: list[tuple[bytes, int]], filter_byte: bool = True) -> bytes:
    """A zlib stream of scanlines given as (row, repeat) pairs, never all in memory at once."""
    z = zlib.compressobj(6)
    out = []
    for row, count in sections:
        line = b"\0" + row if filter_byte else row
        per = max(1, 2**22 // len(line))
        while count > 0:
            n = min(count, per)
            out.append(z.compress(line * n))
            count -= n
    out.append(z.flush())
    return b"".join(out)


def _png(width: int, height: int, idat: bytes, depth: int = 8, colour: int = 0, extra: bytes = b"") -> bytes:
    """A PNG with the given header, extra chunks and image data (checksums correct)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return PNG_MAGIC + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _big_rows(paper: bytes, ink: bytes) -> list[tuple[bytes, int]]:
    """BIG rows of BIG pixels: paper with one dark bar (compresses to a few hundred KB)."""
    plain = paper * BIG
    barred = paper * 1000 + ink * 300 + paper * (BIG - 1300)
    return [(plain, 1000), (barred, 3000), (plain, BIG - 4000)]


def _png_fix_crcs(data: bytes | bytearray) -> bytearray:
    """Recompute every chunk's CRC, so that damage inside a chunk reaches the decoder."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return out


def _png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each whole chunk after the signature."""
    spans, pos = [], 8
    while pos + 12 <= len(data):
        end = pos + 12 + struct.unpack(">I", data[pos : pos + 4])[0]
        if end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def _tiff(width: int, height: int, strip: bytes, *, bits: int = 8, samples: int = 1, photometric: int = 1,
          compression: int = 1, sample_format: int = 1, pages: int = 1, loop: bool = False) -> bytes:  # fmt: skip
    """A little-endian TIFF with one strip per page (every page the same), hand-made."""
    tags = {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [bits] * samples),
        259: (3, [compression]),
        262: (3, [photometric]),
        273: (4, [0]),
        277: (3, [samples]),
        278: (4, [height]),
        279: (4, [len(strip)]),
        284: (3, [1]),
        339: (3, [sample_format] * samples),
    }

    def pack(kind: int, values: list[int]) -> bytes:
        return struct.pack("<" + {3: "H", 4: "I"}[kind] * len(values), *values)

    ifd_size = 2 + 12 * len(tags) + 4
    extra, where = b"", {}
    for tag, (kind, values) in sorted(tags.items()):
        raw = pack(kind, values)
        if len(raw) > 4:
            where[tag] = 8 + pages * ifd_size + len(extra)
            extra += raw + b"\0" * (len(raw) % 2)
    tags[273] = (4, [8 + pages * ifd_size + len(extra)])
    ifds = b""
    for page in range(pages):
        ifd = struct.pack("<H", len(tags))
        for tag, (kind, values) in sorted(tags.items()):
            raw = pack(kind, values)
            field = struct.pack("<I", where[tag]) if tag in where else raw.ljust(4, b"\0")
            ifd += struct.pack("<HHI", tag, kind, len(values)) + field
        following = 8 + (page + 1) * ifd_size if page + 1 < pages else (8 if loop else 0)
        ifds += ifd + struct.pack("<I", following)
    return b"II*\0" + struct.pack("<I", 8) + ifds + extra + strip


def _bmp(width: int, height: int, pixels: bytes, bits: int = 24, compression: int = 0) -> bytes:
    """A BMP (BITMAPINFOHEADER) with the given header fields, hand-made."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(1 << bits)) if bits <= 8 else b""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835, 0, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def _gif(screen: tuple[int, int], frame: tuple[int, int], frames: int = 1) -> bytes:
    """A GIF whose screen and frames declare the given sizes, with a few bytes of pixels."""
    head = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    one = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0) + b"\x02\x02\x4c\x01\x00"
    return head + one * frames + b"\x3b"


def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF) is rewritten to declare another size."""
    data, pos = bytearray(jpeg), 2
    while pos + 4 <= len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        pos += 2 + length
    raise AssertionError("no SOF marker")


def _webp_claiming(webp: bytes, width: int, height: int) -> bytes:
    """A real WebP whose canvas (VP8X) or lossless header (VP8L) declares another size."""
    data = bytearray(webp)
    pos = data.find(b"VP8X")
    if pos >= 0:
        data[pos + 12 : pos + 18] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        return bytes(data)
    pos = data.find(b"VP8L") + 9
    bits = struct.unpack("<I", data[pos : pos + 4])[0] & ~((1 << 28) - 1)
    data[pos : pos + 4] = struct.pack("<I", bits | ((width - 1) & 0x3FFF) | ((height - 1) & 0x3FFF) << 14)
    return bytes(data)


def _progressive_scans(jpeg: bytes, copies: int) -> bytes:
    """A progressive JPEG whose last scan is repeated many times (a known CPU sink)."""
    sos = jpeg.rfind(b"\xff\xda")
    eoi = jpeg.rfind(b"\xff\xd9")
    return jpeg[:eoi] + jpeg[sos:eoi] * copies + jpeg[eoi:]


# =============================================================================================
# The corpus
# =============================================================================================


def _rle8(gray: np.ndarray) -> bytes:
    """BMP RLE8 data of an 8-bit image (the palette of `_bmp` is grey: index = level)."""
    out = bytearray()
    for row in gray[::-1]:
        for value, group in itertools.groupby(row.tolist()):
            n = len(list(group))
            while n > 0:
                out += bytes((min(n, 255), value))
                n -= 255
        out += b"\0\0"
    return bytes(out + b"\0\1")


def valid_files() -> dict[str, bytes]:
    """Every format and mode the Upload page accepts, small and real (file name -> bytes)."""
    gray = _paper("7", 48, 40)
    L = Image.fromarray(gray)
    second = Image.fromarray(255 - gray)
    rgb = Image.fromarray(np.dstack([gray, np.clip(gray.astype(int) + 12, 0, 255).astype(np.uint8), gray]))
    alpha_ink = Image.fromarray(np.dstack([np.full_like(gray, 255)] * 3 + [255 - gray]), "RGBA")
    la = Image.fromarray(np.dstack([gray, np.where(gray > 128, 200, 255).astype(np.uint8)]), "LA")
    pal = L.quantize(16)
    paper_index = int(np.asarray(pal)[2, 2])
    one = L.point(lambda v: 255 if v > 128 else 0).convert("1")
    i16 = Image.fromarray(gray.astype(np.uint16) * 16)  # 12-bit data in 16 bits
    i32 = Image.fromarray(gray.astype(np.int32) * 1000 - 50_000)
    f32 = Image.fromarray(gray.astype(np.float32) / 255.0)
    cmyk = rgb.convert("CMYK")
    rotated = Image.Exif()
    rotated[0x0112] = 6
    rgb16 = (np.repeat(gray[..., None], 3, axis=2).astype(">u2") * 257).reshape(gray.shape[0], -1)
    number, photo = Image.fromarray(_paper("2026", 60, 180)), Image.fromarray(_photo())
    files = {
        "L.png": _save(L, "PNG"),
        "RGB.png": _save(rgb, "PNG"),
        "RGBA-ink-in-alpha.png": _save(alpha_ink, "PNG"),
        "LA.png": _save(la, "PNG"),
        "P.png": _save(pal, "PNG"),
        "P-transparency.png": _save(pal, "PNG", transparency=paper_index),
        "1bit.png": _save(one, "PNG"),
        "16bit.png": _save(i16, "PNG"),
        "RGB-16bit.png": _png(40, 48, zlib.compress(b"".join(b"\0" + r.tobytes() for r in rgb16)), 16, 2),
        "exif-rotated.png": _save(L, "PNG", exif=rotated),
        "animated.png": _save(L, "PNG", save_all=True, append_images=[second]),
        "number.png": _save(number, "PNG"),
        "photo.png": _save(photo, "PNG"),
        "L.jpg": _save(L, "JPEG", quality=90),
        "RGB.jpg": _save(rgb, "JPEG", quality=90),
        "progressive.jpg": _save(rgb, "JPEG", quality=90, progressive=True),
        "CMYK.jpg": _save(cmyk, "JPEG", quality=90),
        "exif-rotated.jpg": _save(rgb, "JPEG", quality=90, exif=rotated),
        "number.jpg": _save(number, "JPEG", quality=90),
        "photo.jpg": _save(photo, "JPEG", quality=80),
        "RGB.bmp": _save(rgb, "BMP"),
        "L.bmp": _save(L, "BMP"),
        "1bit.bmp": _save(one, "BMP"),
        "RGBA.bmp": _save(alpha_ink, "BMP"),
        "P.bmp": _save(pal, "BMP"),
        "rle8.bmp": _bmp(40, 48, _rle8(gray), 8, 1),
        "L.tif": _save(L, "TIFF"),
        "RGB-lzw.tif": _save(rgb, "TIFF", compression="tiff_lzw"),
        "RGBA-deflate.tif": _save(alpha_ink, "TIFF", compression="tiff_adobe_deflate"),
        "16bit.tif": _save(i16, "TIFF"),
        "32bit-int.tif": _save(i32, "TIFF"),
        "float.tif": _save(f32, "TIFF"),
        "CMYK.tif": _save(cmyk, "TIFF"),
        "1bit-group4.tif": _save(one, "TIFF", compression="group4"),
        "jpeg-in.tif": _save(rgb, "TIFF", compression="jpeg"),
        "packbits.tif": _save(L, "TIFF", compression="packbits"),
        "multipage.tif": _save(L, "TIFF", save_all=True, append_images=[second]),
        "orientation.tif": _save(L, "TIFF", tiffinfo={274: 6}),
        "lossy.webp": _save(rgb, "WEBP", quality=90),
        "lossless.webp": _save(L, "WEBP", lossless=True),
        "RGBA.webp": _save(alpha_ink, "WEBP", lossless=True),
        "animated.webp": _save(L, "WEBP", save_all=True, append_images=[second], duration=100),
        "single.gif": _save(L, "GIF"),
        "transparency.gif": _save(pal, "GIF", transparency=paper_index),
        "animated.gif": _save(L, "GIF", save_all=True, append_images=[second], duration=100, loop=0),
    }
    return files


FORMATS = ("png", "jpg", "bmp", "tif", "webp", "gif")
# One file per format and notable variant: the ones truncated and given wrong magic bytes.
REPRESENTATIVES = (
    "L.png", "16bit.png", "P-transparency.png", "animated.png", "RGB.jpg", "progressive.jpg", "CMYK.jpg",
    "RGB.bmp", "rle8.bmp", "L.tif", "16bit.tif", "CMYK.tif", "RGB-lzw.tif", "lossy.webp", "lossless.webp",
    "animated.webp", "single.gif", "animated.gif",
)  # fmt: skip
MAGIC = {
    "png": PNG_MAGIC,
    "jpg": b"\xff\xd8\xff\xe0",
    "bmp": b"BM",
    "tif": b"II*\0",
    "tif-big-endian": b"MM\0*",
    "webp": b"RIFF\0\0\0\0WEBPVP8 ",
    "gif": b"GIF89a",
}
TOO_LARGE = ("enormous", "too large")


def _encoded_as(img: Image.Image, ext: str) -> bytes:
    fmt = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP", "gif": "GIF"}[ext]
    return _save(img.convert("L") if ext != "bmp" else img, fmt)


def fixed_cases() -> list[Case]:
    """The hand-picked part of the corpus: every category the issue lists, each named."""
    rng = random.Random(SEED)
    valid = valid_files()
    cases = [Case(name, data, "valid file", "decoded") for name, data in valid.items()]

    # Sizes: 1x1, below and at the minimum side, 10000x10 and 10x10000 in every format.
    for ext in FORMATS:
        cases.append(
            Case(
                f"1x1.{ext}", _encoded_as(Image.new("L", (1, 1), 255), ext), "1x1", "rejected", ("too small",)
            )
        )
        strip = Image.fromarray(_strip(10, 10000))
        cases.append(Case(f"10000x10.{ext}", _encoded_as(strip, ext), "10000x10", "decoded"))
    cases += [
        Case("10x10000.png", _save(Image.fromarray(_strip(10000, 10)), "PNG"), "10x10000", "decoded"),
        Case("7x7.png", _save(Image.new("L", (7, 7), 255), "PNG"), "7x7", "rejected", ("too small",)),
        Case("7x100.png", _save(Image.new("L", (7, 100), 255), "PNG"), "7x100", "rejected", ("too small",)),
        Case("8x8.png", _save(Image.fromarray(_paper("1", 8, 8)), "PNG"), "8x8", "decoded"),
    ]

    # Truncations of every format: in the header, halfway, the last byte missing.
    for name in REPRESENTATIVES:
        data = valid[name]
        for cut in (8, len(data) // 2, len(data) - 1):  # more cuts, anywhere, among the mutants
            expect = "rejected" if cut <= 8 else None
            cases.append(
                Case(f"cut{cut}-{name}", data[:cut], f"truncated to {cut} of {len(data)} bytes", expect)
            )

    # Wrong magic bytes: each file under another format's signature (in turn), or none;
    # signatures with nothing or random bytes after them.
    for i, name in enumerate(REPRESENTATIVES):
        ext, data = name.rsplit(".", 1)[1], valid[name]
        own = MAGIC[ext]
        others = [m for m in MAGIC if m != ext]
        other = others[i % len(others)]
        cases.append(Case(f"{other}-magic-{name}", MAGIC[other] + data[len(own) :], f"{other} signature"))
        cases.append(
            Case(f"no-magic-{name}", bytes(len(own)) + data[len(own) :], "signature zeroed", "rejected")
        )
    for ext, magic in MAGIC.items():
        cases.append(Case(f"magic-only.{ext}", magic, "just the signature", "rejected"))
        tail = rng.randbytes(2048)
        cases.append(
            Case(f"magic-random.{ext}", magic + tail, "signature + 2 KB of random bytes", "rejected")
        )

    # Not images, and image formats we refuse (Pillow could read them: less attack surface).
    not_images = {
        "empty.png": b"",
        "one-byte.png": b"\x89",
        "notes.txt": b"These are not the digits you are looking for.\n" * 20,
        "page.html": b"<!doctype html><html><body><img src=x></body></html>",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><text>7</text></svg>',
        "scan.pdf": b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF",
        "archive.zip": b"PK\x03\x04" + bytes(26) + b"digit.png",
        "figure.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 48\nshowpage\n",
        "layers.psd": b"8BPS\0\1" + bytes(6) + struct.pack(">HIIHH", 1, 48, 40, 8, 1) + bytes(64),
        "plain.pgm": b"P2\n40 48\n255\n" + b" ".join(str(v).encode() for v in _paper("7", 48, 40).ravel()),
        # 10 M comment lines: Pillow's plain-PNM decoder takes hours (quadratic) on these 19 MB.
        "comments.pgm": b"P2\n40 48\n255\n" + b"#\n" * 10_000_000,
        "plain.pbm": b"P1\n40 48\n" + b"0" * (40 * 48),
    }
    cases += [Case(n, d, "not an image we read", "rejected", ("empty",) if not d else ("not an image",))
              for n, d in not_images.items()]  # fmt: skip
    sample = Image.fromarray(_paper("7", 48, 40))
    for fmt, ext in [
        ("PPM", "ppm"), ("PPM", "pgm"), ("PCX", "pcx"), ("ICO", "ico"), ("TGA", "tga"), ("SGI", "sgi"),
        ("QOI", "qoi"), ("JPEG2000", "jp2"), ("AVIF", "avif"), ("DDS", "dds"), ("MSP", "msp"),
        ("SPIDER", "spider"), ("XBM", "xbm"), ("BLP", "blp"), ("PALM", "palm"), ("ICNS", "icns"),
    ]:  # fmt: skip
        img = {"MSP": sample.convert("1"), "XBM": sample.convert("1")}.get(fmt, sample)
        try:
            data = _save(img.convert("RGB") if ext == "ppm" else img, fmt)
        except Exception:  # noqa: BLE001 - an encoder this Pillow build lacks
            continue
        cases.append(
            Case(f"refused.{ext}", data, f"{fmt}: a format we refuse", "rejected", ("not an image",))
        )
    for length in (1, 3, 16, 255, 4096, 65_536):
        cases.append(
            Case(f"random-{length}.bin", rng.randbytes(length), f"{length} random bytes", "rejected")
        )

    # Huge declared dimensions, refused from the header, before a pixel is decoded.
    jpeg, webp = valid["RGB.jpg"], valid["lossless.webp"]
    huge = {
        "100000x100000.png": _png(100_000, 100_000, zlib.compress(bytes(64))),
        "2147483647x2147483647.png": _png(2**31 - 1, 2**31 - 1, zlib.compress(bytes(64))),
        "1x2147483647.png": _png(1, 2**31 - 1, zlib.compress(bytes(64))),
        "100000x100000.bmp": _bmp(100_000, 100_000, bytes(64)),
        "100000x-100000.bmp": _bmp(100_000, -100_000, bytes(64)),
        "2147483647x8.bmp": _bmp(2**31 - 1, 8, bytes(64), 32),
        "65535x65535.gif": _gif((65535, 65535), (65535, 65535)),
        "100000x100000.tif": _tiff(100_000, 100_000, bytes(64)),
        "4294967295x8.tif": _tiff(2**32 - 1, 8, bytes(64)),
        "65535x65535.jpg": _jpeg_claiming(jpeg, 65535, 65535),
        "16384x16384.webp": _webp_claiming(webp, 16384, 16384),
        "16777216x16777216.webp": _webp_claiming(valid["animated.webp"], 2**24, 2**24),
        "7000x7000.png": _png(7000, 7000, zlib.compress(bytes(64))),  # 49 M: under Pillow's limit, over ours
    }
    cases += [Case(n, d, "huge declared dimensions", "rejected", TOO_LARGE) for n, d in huge.items()]
    # Allowed dimensions but (almost) no data: the decoder allocates the image, then stops.
    claims = {
        "claims-6000x6000.png": _png(6000, 6000, zlib.compress(bytes(64)), 8, 6),
        "claims-6000x6000.bmp": _bmp(6000, 6000, bytes(64)),
        "claims-6000x6000.gif": _gif((6000, 6000), (6000, 6000)),
        "claims-6000x6000.tif": _tiff(6000, 6000, bytes(64), bits=16),
        "claims-6000x6000.jpg": _jpeg_claiming(jpeg, 6000, 6000),
        "claims-6000x6000-CMYK.jpg": _jpeg_claiming(valid["CMYK.jpg"], 6000, 6000),
        "claims-6000x6000.webp": _webp_claiming(webp, 6000, 6000),
        "screen-65535-frame-8.gif": _gif((65535, 65535), (8, 8)),
    }
    cases += [Case(n, d, "allowed size, almost no data") for n, d in claims.items()]

    # Decompression bombs: tiny files that unpack to huge images, over and just under the limit.
    white, black = b"\xeb", b"\x14"
    bombs = [
        ("bomb-100Mpx.png", _png(10_000, 10_000, _zlib_rows([(bytes(10_000), 10_000)])), "rejected"),
        ("bomb-L.png", _png(BIG, BIG, _zlib_rows(_big_rows(white, black))), "decoded"),
        ("bomb-16bit.png", _png(BIG, BIG, _zlib_rows(_big_rows(b"\x0f\xa0", b"\x00\x64")), 16, 0), "decoded"),
        ("bomb-RGBA.png", _png(BIG, BIG, _zlib_rows(_big_rows(b"\0\0\0\0", b"\0\0\0\xff")), 8, 6), "decoded"),
        (
            "bomb-P-transparency.png",
            _png(BIG, BIG, _zlib_rows(_big_rows(b"\0", b"\1")), 8, 3,
                 _chunk(b"PLTE", b"\xff\xff\xff\0\0\0") + _chunk(b"tRNS", b"\0")),  # fmt: skip
            "decoded",
        ),
        (
            "bomb-float.tif",
            _tiff(BIG, BIG, _zlib_rows(_big_rows(struct.pack("<f", 1.0), struct.pack("<f", 0.1)), False),
                  bits=32, compression=8, sample_format=3),  # fmt: skip
            "decoded",
        ),
        (
            "bomb-CMYK.tif",
            _tiff(BIG, BIG, _zlib_rows(_big_rows(b"\0\0\0\0", b"\0\0\0\xff"), False),
                  samples=4, photometric=5, compression=8),  # fmt: skip
            "decoded",
        ),
        ("bomb-over-limit.tif", _tiff(8000, 8000, _zlib_rows([(bytes(8000), 8000)], False), compression=8), "rejected"),
        ("bomb-rle8.bmp", _bmp(BIG, BIG, (b"\xff\xeb" * 24 + b"\xb4\xeb\0\0") * BIG + b"\0\1", 8, 1), "decoded"),
    ]  # fmt: skip
    big = Image.new("L", (BIG, BIG), 235)
    big.paste(20, (1000, 1000, 1300, 4000))
    bombs += [
        ("bomb.jpg", _save(big, "JPEG", quality=75), "decoded"),
        ("bomb.gif", _save(big, "GIF"), "decoded"),
        ("bomb.webp", _save(big, "WEBP", lossless=True, method=0, quality=0), "decoded"),
        ("bomb-CMYK.jpg", _save(big.convert("CMYK"), "JPEG", quality=75), "decoded"),
    ]
    del big
    cases += [Case(n, d, "decompression bomb", e, TOO_LARGE if e == "rejected" else ()) for n, d, e in bombs]

    # Other ways to make a small file expensive.
    text_bomb = zlib.compress(bytes(64 * 2**20), 9)
    l_png, gif = valid["L.png"], valid["single.gif"]
    ihdr_end = 8 + 25
    expensive = {
        "zTXt-bomb.png": l_png[:ihdr_end] + _chunk(b"zTXt", b"comment\0\0" + text_bomb) + l_png[ihdr_end:],
        "iCCP-bomb.png": l_png[:ihdr_end] + _chunk(b"iCCP", b"icc\0\0" + text_bomb) + l_png[ihdr_end:],
        "iTXt-bomb.png": l_png[:ihdr_end] + _chunk(b"iTXt", b"k\0\1\0\0\0" + text_bomb) + l_png[ihdr_end:],
        "20000-chunks.png": l_png[:ihdr_end] + _chunk(b"tEXt", b"k\0v") * 20_000 + l_png[ihdr_end:],
        "idat-overflow.png": _png(40, 48, zlib.compress(bytes(200 * 2**20), 9)),
        "scans-x5000-small.jpg": _progressive_scans(valid["progressive.jpg"], 5000),
        "2000-frames.gif": _gif((40, 48), (40, 48), 2000),
        "1000-pages.tif": _tiff(40, 48, bytes(40 * 48), pages=1000),
        "ifd-loop.tif": _tiff(40, 48, bytes(40 * 48), pages=2, loop=True),
        # Pillow reads these in Python, at about 0.1-0.3 s per MB (so 2-6 s at the 20 MB limit):
        # 4 MB of RLE runs of one pixel, of empty unknown PNG chunks, of 1-byte GIF comment blocks.
        "rle8-runs-of-one.bmp": _bmp(BIG, BIG, b"\x01\x00\x01\xff" * 2**20, 8, 1),
        "many-chunks.png": l_png[:ihdr_end] + _chunk(b"abCd", b"") * (2**22 // 12) + l_png[ihdr_end:],
        "comment-blocks.gif": gif.replace(b"\x2c", b"!\xfe" + b"\x01x" * 2**21 + b"\0\x2c", 1),
    }
    cases += [Case(n, d, "small file, expensive to decode") for n, d in expensive.items()]
    # Refused before decoding (without that: 30 s of CPU for the first, 8 s and 300 MB for the second).
    scans = _progressive_scans(_jpeg_claiming(valid["progressive.jpg"], BIG, BIG), 8000)
    cases.append(Case("scans-x8000.jpg", scans, "0.9 MB of progressive scans", "rejected", ("scans",)))
    segments = jpeg[:2] + b"\xff\xe1\0\2" * (19 * 2**20 // 4) + jpeg[2:]
    cases.append(Case("segments.jpg", segments, "19 MB of empty segments", "rejected", ("segments",)))
    return cases


# --- mutations of real encodings -------------------------------------------------------------

INTERESTING = {
    1: (0x00, 0x01, 0x7F, 0x80, 0xFF),
    2: (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x0100, 10_000),
    4: (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 100_000, 65_536, 0x40000000),
}


def _position(rng: random.Random, data: bytearray) -> int:
    """Half of the damage lands in bytes 8..63, the headers after the signature (a broken
    signature only gets "not an image"; the fixed corpus has those), the rest anywhere."""
    if rng.random() < 0.5 and len(data) > 8:
        return rng.randrange(8, min(len(data), 64))
    return rng.randrange(max(1, len(data)))


def _mutate_once(data: bytearray, rng: random.Random, others: list[bytes]) -> tuple[bytearray, str]:
    if not data:
        return bytearray(rng.randbytes(rng.randrange(1, 64))), "random bytes"
    op = rng.choice(
        ("flip", "flip", "byte", "int", "int", "cut", "delete", "insert", "repeat", "fill", "splice")
    )
    pos = _position(rng, data)
    if op == "flip":
        spots = sorted(_position(rng, data) for _ in range(rng.randint(1, 8)))
        for p in spots:
            data[p] ^= 1 << rng.randrange(8)
        return data, f"flip bits @{','.join(map(str, spots))}"
    if op == "byte":
        data[pos] = rng.choice(INTERESTING[1] + (rng.randrange(256),))
        return data, f"byte @{pos}={data[pos]}"
    if op == "int":
        size = rng.choice((2, 4))
        value, order = rng.choice(INTERESTING[size]), rng.choice(("<", ">"))
        pos = min(pos, max(0, len(data) - size))
        data[pos : pos + size] = struct.pack(order + ("H" if size == 2 else "I"), value)
        return data, f"int{8 * size}{order}{value} @{pos}"
    if op == "cut":
        return data[:pos], f"cut @{pos}"
    length = rng.randint(1, max(1, len(data) // 8))
    if op == "delete":
        del data[pos : pos + length]
        return data, f"delete {length} @{pos}"
    if op == "insert":
        data[pos:pos] = rng.randbytes(rng.randint(1, 64))
        return data, f"insert @{pos}"
    if op == "repeat":
        data[pos:pos] = data[pos : pos + length] * rng.randint(1, 4)
        return data, f"repeat {length} @{pos}"
    if op == "fill":
        value = rng.choice((0x00, 0xFF))
        data[pos : pos + length] = bytes([value]) * len(data[pos : pos + length])
        return data, f"fill {length}x{value} @{pos}"
    other = rng.choice(others)
    cut = rng.randrange(len(other))
    return data[:pos] + other[cut:], f"splice @{pos} with another file @{cut}"


def _mutate_png(data: bytearray, rng: random.Random) -> tuple[bytearray, str]:
    """PNG-aware damage: header fields, whole chunks dropped or repeated (checksums fixed)."""
    spans = _png_chunks(bytes(data))
    op = rng.choice(("ihdr", "ihdr", "drop", "repeat"))
    if op == "ihdr" or len(spans) < 2:
        field = rng.choice(("width", "height", "depth", "colour", "interlace", "compression"))
        where, size = {"width": (16, 4), "height": (20, 4), "depth": (24, 1), "colour": (25, 1),
                       "interlace": (28, 1), "compression": (26, 1)}[field]  # fmt: skip
        if size == 4:
            value = rng.choice(INTERESTING[4] + (rng.randrange(1, 20_000),))
        else:
            value = rng.choice((0, 1, 2, 3, 4, 6, 7, 8, 16, 32, 255))
        data[where : where + size] = value.to_bytes(size, "big")
        return _png_fix_crcs(data), f"IHDR {field}={value}"
    start, end = spans[rng.randrange(len(spans))]
    kind = bytes(data[start + 4 : start + 8]).decode("latin-1")
    if op == "drop":
        del data[start:end]
        return data, f"drop chunk {kind}"
    data[start:start] = data[start:end]
    return data, f"repeat chunk {kind}"


def mutant(index: int, valid: dict[str, bytes]) -> Case:
    """Input number `index` of the mutated part: the same bytes for the same index, always."""
    rng = random.Random(SEED * 1_000_003 + index)
    names = sorted(valid)
    if rng.random() < 0.03:
        magic = rng.choice([b""] + list(MAGIC.values()))
        data = magic + rng.randbytes(rng.choice((1, 16, 300, 5000)))
        return Case(f"{index:05d}-random.bin", data, "random bytes" + (" after a signature" if magic else ""))
    base = rng.choice(names)
    data, steps = bytearray(valid[base]), []
    is_png = base.endswith(".png")
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        if is_png and rng.random() < 0.3:
            data, step = _mutate_png(data, rng)
        else:
            data, step = _mutate_once(data, rng, [valid[n] for n in names])
        steps.append(step)
    if is_png and rng.random() < 0.5:
        data = _png_fix_crcs(data)
        steps.append("CRCs fixed")
    return Case(f"{index:05d}-{base}", bytes(data), f"{base}: " + "; ".join(steps))


def fuzz_inputs(indices: Iterable[int]) -> Iterator[tuple[int, Case]]:
    """Inputs by number: the fixed corpus first, then mutants (the fast run is a prefix)."""
    fixed = fixed_cases()
    valid = valid_files()
    for index in indices:
        yield index, fixed[index] if index < len(fixed) else mutant(index, valid)


# =============================================================================================
# One input through the upload path
# =============================================================================================


def check_upload(data: bytes, name: str, settings: Settings) -> tuple[str, str]:
    """What the Upload page and the CLI do with an uploaded file, up to the model.

    ("decoded", what was found) or ("rejected", the message); any other exception escapes.
    """
    try:
        gray = decode_image(data, name, settings)
    except ImageError as exc:
        return "rejected", str(exc)
    assert isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and gray.ndim == 2, repr(gray)[:200]
    assert min(gray.shape) >= 1 and max(gray.shape) <= MAX_WORK_SIDE, gray.shape
    found = []
    for single in (True, False):
        crops = crops_for(gray, single=single)
        for crop in crops:
            image = np.asarray(crop.image)
            assert image.shape == (28, 28) and np.isfinite(image).all(), image.shape
            assert float(image.min()) >= -1e-6 and float(image.max()) <= 1 + 1e-6
        found.append(len(crops))
    return "decoded", f"{gray.shape[1]}x{gray.shape[0]}, {found[0]} digit (single) / {found[1]} (multi)"


def unclear(message: str, name: str) -> str | None:
    """Why a rejection's message would not help a person, or None when it is clear."""
    if not message.strip():
        return "the message is empty"
    if not message.startswith(name):
        return "the message does not name the file"
    if "\n" in message or not message.isprintable() or len(message) > 400:
        return "the message is not one short printable line"
    if "Traceback" in message or "Error:" in message:
        return "the message is a programmer's error"
    if "memory" in message:
        return "the decoder ran out of memory: the size checks should have refused it first"
    if not any(reason in message[len(name) :] for reason in REASONS):
        return f"the message gives none of the known reasons {REASONS}"
    return None


# =============================================================================================
# The worker (this file as a script, in a child process) and the test that drives it
# =============================================================================================


def _status() -> dict[str, int]:
    """VmRSS, VmHWM (peak) and VmSize of this process, in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> bool:
    """Start a new peak-RSS measurement (Linux >= 4.0); False if this system cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _emit(stream: io.TextIOBase, **record: object) -> None:
    stream.write(_PROTOCOL + json.dumps(record) + "\n")
    stream.flush()


def worker(total: int, only: int | None, keep: Path | None, out: io.TextIOBase) -> None:
    """Run the inputs, one JSON line each (see `run_fuzz`); files for the model subset go to `keep`.

    Memory is the peak resident size during the input above the size before it (exact on
    Linux, where the peak can be reset); elsewhere tracemalloc's count of Python and numpy
    allocations stands in (it slows Python code down, so it is not used when not needed).
    """
    settings = Settings()
    inputs = fuzz_inputs(range(total) if only is None else [only])
    # A runaway allocation fails (and is reported) instead of eating the machine.
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = _status()["VmSize"] + 4 * MAX_MEMORY_BYTES
    resource.setrlimit(
        resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
    )
    precise = _reset_peak()
    if not precise:
        tracemalloc.start()
    baseline = peak = _status()["VmRSS"]
    for index, case in inputs:
        _emit(out, start=index, name=case.name)
        _reset_peak()
        before = _status()["VmRSS"]
        if not precise:
            tracemalloc.reset_peak()
            traced = tracemalloc.get_traced_memory()[0]
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            outcome, text = check_upload(case.data, case.name, settings)
        except Exception as exc:  # noqa: BLE001 - the point: report whatever escapes
            lines = traceback.format_exception(exc, limit=-3)
            outcome, text = "crash", "".join(lines[-4:]).strip()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if precise:
            high = _status()["VmHWM"]
            memory, peak = max(0, high - before), max(peak, high)
        else:
            memory = max(0, tracemalloc.get_traced_memory()[1] - traced)
        kept = None
        if keep is not None and (case.how == "valid file" or index % RECOGNIZE_EVERY == 0):
            kept = str(keep / f"{index:05d}.{case.name.rsplit('.', 1)[-1][:8]}")
            Path(kept).write_bytes(case.data)
        _emit(out, done=index, name=case.name, how=case.how, expect=case.expect, says=list(case.says),
              outcome=outcome, text=text, cpu=cpu, wall=wall, memory=memory, kept=kept)  # fmt: skip
    _emit(out, end=True, baseline=baseline, peak=peak, precise_memory=precise, settings={
        "max_upload_bytes": settings.max_upload_bytes, "max_image_pixels": settings.max_image_pixels})  # fmt: skip


@dataclass
class FuzzRun:
    results: list[dict]
    end: dict
    seconds: float


def run_fuzz(total: int, keep: Path, log: Path) -> FuzzRun:
    """Run `total` inputs in a child process, watching it: a hang or a dead worker fails here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGIT_APP_MAX_")}  # the default limits
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    # Image-sized blocks (>= 16 MiB) are mapped and given back to the OS when freed, so that an
    # input's peak resident size is not hidden by memory an earlier input left in the heap.
    env["MALLOC_MMAP_THRESHOLD_"] = str(16 * 2**20)
    command = [sys.executable, str(Path(__file__).resolve()), str(total), "--keep", str(keep)]
    started = time.perf_counter()
    with log.open("wb") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=PROJECT_ROOT)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for raw in child.stdout:
                line = raw.decode("utf-8", "replace")
                if line.startswith(_PROTOCOL):
                    lines.put(line[len(_PROTOCOL) :])
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        results, current, end = [], None, None
        try:
            while end is None:
                timeout = STARTUP_SECONDS if current is None and not results else HANG_SECONDS
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    if current is None:
                        pytest.fail(f"the worker did not start within {timeout:.0f} s")
                    pytest.fail(
                        f"hang: input #{current['start']} ({current['name']}) has not finished after "
                        f"{timeout:.0f} s; reproduce with `.venv/bin/python tests/test_fuzz.py "
                        f"--only {current['start']}`"
                    )
                if line is None:
                    child.wait(30)
                    tail = log.read_text(errors="replace")[-2000:]
                    where = f"input #{current['start']} ({current['name']})" if current else "start-up"
                    pytest.fail(
                        f"the worker died (exit status {child.returncode}) at {where}: a crash in native "
                        f"code, or killed for memory; reproduce with `.venv/bin/python tests/test_fuzz.py "
                        f"--only N`\n{tail}"
                    )
                record = json.loads(line)
                if "start" in record:
                    current = record
                elif "done" in record:
                    results.append(record)
                else:
                    end = record
        finally:
            if child.poll() is None:
                child.kill()  # our own worker, stuck
            child.wait(30)
    return FuzzRun(results, end, time.perf_counter() - started)


def problems_of(record: dict) -> list[str]:
    """What is wrong with one input's outcome (nothing, normally)."""
    where = f"#{record['done']} {record['name']} ({record['how']})"
    out = []
    if record["outcome"] == "crash":
        out.append(f"{where}: uncaught exception:\n{record['text']}")
    elif record["outcome"] == "rejected":
        why = unclear(record["text"], record["name"])
        if why:
            out.append(f"{where}: {why}: {record['text']!r}")
        elif record["says"] and not any(s in record["text"] for s in record["says"]):
            out.append(f"{where}: the message should say {' or '.join(record['says'])}: {record['text']!r}")
    if record["expect"] and record["outcome"] != record["expect"]:
        out.append(f"{where}: should be {record['expect']}, was {record['outcome']}: {record['text']!r}")
    if record["cpu"] > MAX_CPU_SECONDS:
        out.append(f"{where}: took {record['cpu']:.1f} s of CPU (bound {MAX_CPU_SECONDS} s)")
    if record["memory"] > MAX_MEMORY_BYTES:
        out.append(
            f"{where}: needed {record['memory'] / 2**20:.0f} MiB (bound {MAX_MEMORY_BYTES / 2**20:.0f} MiB)"
        )
    return out


def recognize_kept(results: list[dict], predictor: object) -> tuple[list[str], dict]:
    """The kept files through the CLI's `recognize_file` with the real model, single and multi."""
    from digit_app.predict import recognize_file

    problems, slowest, runs = [], 0.0, 0
    for record in results:
        if not record["kept"]:
            continue
        path = Path(record["kept"])
        for single in (True, False):
            wall = time.perf_counter()
            try:
                out = recognize_file(path, predictor, single)
            except Exception:  # noqa: BLE001 - reported below
                problems.append(
                    f"CLI on {record['name']} (single={single}): {traceback.format_exc(limit=-3)}"
                )
                continue
            wall = time.perf_counter() - wall
            slowest, runs = max(slowest, wall), runs + 1
            where = f"CLI on #{record['done']} {record['name']} (single={single})"
            if wall > RECOGNIZE_WALL_SECONDS:
                problems.append(f"{where}: took {wall:.0f} s")
            if out["error"] is not None:
                if not isinstance(out["error"], str) or unclear(out["error"], path.name):
                    problems.append(f"{where}: unclear error {out['error']!r}")
                if record["outcome"] != "rejected":
                    problems.append(
                        f"{where}: the CLI refused what the upload path decoded: {out['error']!r}"
                    )
            else:
                digits = "".join(d["shown"] for d in out["detail"])
                if (
                    record["outcome"] != "decoded"
                    or out["digits"] != digits
                    or not 0 <= out["confidence"] <= 1
                ):
                    problems.append(f"{where}: inconsistent result {out!r:.300}")
                if not out["detail"] and not out["message"]:
                    problems.append(f"{where}: no digit and no message")
    return problems, {
        "files": sum(bool(r["kept"]) for r in results),
        "runs": runs,
        "max_wall_seconds": round(slowest, 3),
    }


def write_report(key: str, run: FuzzRun, recognized: dict, problems: int) -> dict:
    """One entry of reports/fuzz.json (other entries are kept)."""
    results = run.results
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("decoded", "rejected", "crash")}
    slowest = max(results, key=lambda r: r["cpu"])
    largest = max(results, key=lambda r: r["memory"])
    wall = max(r["wall"] for r in results)
    entry = {
        "summary": (
            f"{len(results):,} inputs: {counts['decoded']:,} decoded, {counts['rejected']:,} rejected with a "
            f"clear message, {counts['crash']} uncaught errors, {problems} problems; per input at most "
            f"{slowest['cpu']:.1f} s CPU ({wall:.1f} s wall) and {largest['memory'] / 2**20:.0f} MiB"
        ),
        "inputs": len(results),
        **counts,
        "problems": problems,
        "max_cpu_seconds": round(slowest["cpu"], 3),
        "slowest_input": slowest["name"],
        "max_wall_seconds": round(wall, 3),
        "max_memory_mib": round(largest["memory"] / 2**20, 1),
        "largest_input": largest["name"],
        "worker_peak_rss_mib": round(run.end["peak"] / 2**20, 1),
        "precise_memory": run.end["precise_memory"],
        "recognized_with_model": recognized,
        "run_seconds": round(run.seconds, 1),
        "bounds": {
            "cpu_seconds": MAX_CPU_SECONDS,
            "memory_mib": MAX_MEMORY_BYTES // 2**20,
            "hang_seconds": HANG_SECONDS,
        },
        "limits": run.end["settings"],
        "seed": SEED,
        "versions": {
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "opencv": cv2.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    REPORT.parent.mkdir(exist_ok=True)
    try:
        report = json.loads(REPORT.read_text())
    except (OSError, ValueError):
        report = {}
    report[key] = entry
    tmp = REPORT.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(REPORT)
    return entry


# --- the tests ------------------------------------------------------------------------------


def _fuzz(total: int, key: str, predictor: object, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    keep.mkdir()
    run = run_fuzz(total, keep, tmp_path / "worker.log")
    assert len(run.results) == total
    problems = [p for record in run.results for p in problems_of(record)]
    cli_problems, recognized = recognize_kept(run.results, predictor)
    problems += cli_problems
    entry = write_report(key, run, recognized, len(problems))
    print(entry["summary"])
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


@pytest.fixture(scope="module")
def predictor():
    from digit_app.predictor import served_predictor

    return served_predictor()


def test_corpus_covers_every_category_and_fits_the_fast_run():
    fixed = fixed_cases()
    names = {c.name for c in fixed}
    assert len(fixed) < FAST_INPUTS, "the fast run must include the whole fixed corpus"
    for ext in FORMATS:
        assert {f"1x1.{ext}", f"10000x10.{ext}"} <= names
        assert any(n.startswith("cut") and n.endswith(ext) for n in names), ext
    for needed in ("empty.png", "100000x100000.png", "100000x100000.bmp", "bomb-100Mpx.png",
                   "bomb-16bit.png", "16bit.tif", "CMYK.jpg", "CMYK.tif", "animated.gif",
                   "animated.webp", "P-transparency.png", "random-4096.bin"):  # fmt: skip
        assert needed in names, needed
    assert any(c.how.endswith("signature") for c in fixed)
    # The mutants are the same on every run.
    valid = valid_files()
    assert mutant(5000, valid) == mutant(5000, valid)
    assert all(len(c.data) <= Settings().max_upload_bytes for c in fixed)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow's notes on the broken files
def test_fuzz_upload_path_fast(predictor, tmp_path):
    _fuzz(FAST_INPUTS, "fast", predictor, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
def test_fuzz_upload_path_10k(predictor, tmp_path):
    _fuzz(FULL_INPUTS, "full", predictor, tmp_path)


# --- the upload size limit: in Streamlit's config and again in code ------------------------


def test_streamlit_upload_limit_matches_the_code(monkeypatch):
    import tomllib

    monkeypatch.delenv("DIGIT_APP_MAX_UPLOAD_BYTES", raising=False)
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    megabytes = config["server"]["maxUploadSize"]  # Streamlit counts MiB (x 1024 x 1024)
    assert isinstance(megabytes, int) and megabytes > 0
    assert megabytes * 2**20 == Settings().max_upload_bytes


def test_decode_image_refuses_bytes_over_the_limit():
    settings = Settings()
    limit = settings.max_upload_bytes
    with pytest.raises(ImageError) as info:
        decode_image(PNG_MAGIC + bytes(limit + 1 - len(PNG_MAGIC)), "huge.png", settings)
    message = str(info.value)
    assert "too large" in message and "limit" in message
    assert unclear(message, "huge.png") is None
    # At the limit the size is no reason to refuse; these bytes are just not an image.
    with pytest.raises(ImageError, match="not an image"):
        decode_image(bytes(limit), "at-limit.png", settings)


def test_cli_refuses_files_over_the_limit(tmp_path, monkeypatch):
    from digit_app.predict import recognize_file

    monkeypatch.setenv("DIGIT_APP_MAX_UPLOAD_BYTES", "1000")
    path = tmp_path / "big.png"
    path.write_bytes(_save(Image.fromarray(_photo()), "PNG"))
    assert path.stat().st_size > 1000
    record = recognize_file(path, predictor=None, single=False)  # refused before the model
    assert record["error"] and "too large" in record["error"] and record["digits"] == ""


def test_upload_page_refuses_files_over_the_limit(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DIGIT_APP_MAX_UPLOAD_BYTES", "2000")
    small = _save(Image.fromarray(_paper("7", 48, 40)), "PNG")
    big = _save(Image.fromarray(_photo()), "PNG")
    assert len(small) <= 2000 < len(big)
    at = AppTest.from_file(str(PROJECT_ROOT / "digit_app" / "pages" / "upload.py"), default_timeout=60).run()
    uploader = at.get_by_key("uploads") if hasattr(at, "get_by_key") else at.file_uploader[0]
    uploader.upload("small.png", small, "image/png")
    uploader.upload("big.png", big, "image/png")
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("big.png" in e and "too large" in e for e in errors), errors
    assert not any("small.png" in e for e in errors), errors
    assert len(at.metric) == 1  # the small one was read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the fuzz inputs (the test's worker); one JSON line each."
    )
    parser.add_argument("inputs", type=int, nargs="?", default=FAST_INPUTS, help="how many inputs")
    parser.add_argument("--only", type=int, default=None, help="run just this input (by index)")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the files the model should see")
    args = parser.parse_args(argv)
    if args.keep is None and args.only is None and sys.stdout.isatty():
        print("(one JSON line per input; the last line has the totals)", file=sys.stderr)
    worker(args.inputs, args.only, args.keep, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
