"""Normalisation: one digit's ink -> the 28x28 image the model reads, as MNIST was made.

In: white-on-black ink of one digit, any size (uint8 or float). Out: (28, 28) float32 0..1,
and on the way the cropped ink and the 20-px box (`normalize_steps`).
Why: MNIST was made this way: each handwritten digit was scanned, its bounding box scaled
(keeping the aspect ratio, with anti-aliasing) so that the longer side is 20 pixels, and that
20x20 box pasted into a 28x28 field so that the centre of mass of the ink lands at the centre.
A model only reads real handwriting well when it is shown digits prepared the same way. A
stroke much bolder than MNIST's (a fat brush on a small drawing, a marker) is first brought
to MNIST's width.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from digit_app.reading.measure import (
    ANALYSIS_SIDE,
    HALF_SIZE_ERROR,
    bounding_box,
    halved,
    stroke_width,
    stroke_width_u8,
)
from digit_app.reading.types import BOX, CENTER, SIZE

# Shift by a fraction of a pixel (bilinear) to put the centre of mass exactly at CENTER, or by
# whole pixels as MNIST itself did (within half a pixel, but never blurred).
SUBPIXEL = True
# MNIST's stroke width relative to the longer side of the digit (measured on the training set
# with `stroke_width`): median 0.12, 5th-95th percentile 0.08-0.185. Strokes bolder than
# STROKE_RANGE[1] (a fat canvas brush on a small drawing, a marker) are thinned to the median.
# Hairlines are NOT thickened (lower bound 0): area-averaged downscaling already turns a thin
# pen line into a 1-2 px grey stroke, and thickening measured worse on real scans (-0.7 point).
STROKE_TARGET = 0.12
STROKE_RANGE = (0.0, 0.15)


def normalize_digit(ink: np.ndarray, stroke: bool = True) -> np.ndarray:
    """White-on-black ink of one digit (any size) -> (28, 28) float32 0..1, MNIST style.

    `stroke`: bring a stroke much thinner or bolder than MNIST's to MNIST's width first.
    """
    return normalize_steps(ink, stroke)[2]


def normalize_steps(
    ink: np.ndarray, stroke: bool = True, bb: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cropped, box20, final) of one digit's ink; `bb`: its bounding box when already known."""
    if bb is None:
        cropped = _crop(np.asarray(ink))
    else:
        x, y, w, h = bb
        cropped = ink[y : y + h, x : x + w]
    if stroke:
        cropped = adjust_stroke(cropped)
    box = scale_to_box(cropped)
    return cropped, box, center_in_field(box)


def adjust_stroke(cropped: np.ndarray, width: float | None = None) -> np.ndarray:
    """Bring a stroke outside STROKE_RANGE (relative to the digit's size) to MNIST's median width.

    Grey-level dilation or erosion with a disc, so anti-aliased edges stay smooth; erosion
    never takes more than half a stroke, so thin parts of a bold digit do not vanish.
    With the shipped range only bold strokes are changed (see STROKE_RANGE).
    `width`: the `stroke_width` of the pixels at or above half the peak, when already known.
    """
    a = np.asarray(cropped)
    if a.dtype == np.uint8:
        # Integer grey levels: morphology on them directly gives the float result exactly.
        peak = float(cv2.minMaxLoc(a)[1])
        if peak <= 0:
            return cropped
        level = math.ceil(0.5 * peak)  # v >= 0.5 * peak for an integer v
        mask = cv2.threshold(a, level - 1, 1, cv2.THRESH_BINARY)[1].view(bool)
    else:
        a = a.astype(np.float32)
        peak = float(a.max())
        if peak <= 0:
            return cropped
        mask = a >= 0.5 * peak
    side = max(a.shape)
    if width is None and a.dtype == np.uint8 and min(a.shape) >= ANALYSIS_SIDE:
        # A large crop: first measured on a half-size copy, which settles the usual case (a
        # stroke well inside the range) with a quarter of the pixels to trace.
        small = cv2.threshold(halved(a), level - 1, 1, cv2.THRESH_BINARY)[1]
        rel = stroke_width_u8(small, cv2.countNonZero(small)) / max(small.shape)
        if STROKE_RANGE[0] * (1.0 + HALF_SIZE_ERROR) <= rel <= STROKE_RANGE[1] / (1.0 + HALF_SIZE_ERROR):
            return cropped
    if width is None:
        width = stroke_width(mask)
    rel = width / side
    if STROKE_RANGE[0] <= rel <= STROKE_RANGE[1] or side < 8:
        return cropped
    change = STROKE_TARGET * side - width
    if change > 0:
        k = int(round(change)) + 1
        if k < 2:
            return cropped
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        out = cv2.dilate(np.pad(a, k), kernel)
    else:
        k = int(round(min(-change, 0.5 * width))) + 1
        if k < 2:
            return cropped
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        out = cv2.erode(a, kernel)
        if np.count_nonzero(out >= 0.5 * peak) < 0.25 * np.count_nonzero(mask):
            return cropped
    return _crop(out)


def scale_to_box(cropped: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so that the longer side is `box` px, keeping the aspect ratio; float32 0..1, peak 1."""
    # Any scale (0..255 or 0..1): the result is divided by its peak at the end.
    c = np.asarray(cropped).astype(np.float32)
    h, w = c.shape
    s = box / max(h, w)
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    if s < 1.0:
        # Area averaging (what cv2.INTER_AREA does), as two small matrix products: several
        # times faster than OpenCV's general area resize, equal up to float rounding.
        out = _area_weights(h, size[1]) @ c @ _area_weights(w, size[0]).T
    elif s > 1.0:
        # Enlarging a small image: linear interpolation with a zero margin so edges fade as they should.
        padded = np.pad(c, 1)
        # Pixel centres: x_out = s * x_in + (s - 1) / 2, and x_in = x_padded - 1.
        t = 0.5 * (s - 1) - s
        m = np.array([[s, 0, t], [0, s, t]], np.float32)
        out = cv2.warpAffine(padded, m, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    else:
        out = c.copy()
    peak = float(out.max())
    if peak > 0:
        np.divide(out, peak, out=out)
        np.clip(out, 0.0, 1.0, out=out)
    return out


def center_in_field(box: np.ndarray, size: int = SIZE, subpixel: bool | None = None) -> np.ndarray:
    """Paste into size x size so that the centre of mass lands on MNIST's centre."""
    subpixel = SUBPIXEL if subpixel is None else subpixel
    cx, cy = center_of_mass(box)
    c = float(CENTER) * size / SIZE
    tx, ty = c - cx, c - cy
    if not subpixel:
        tx, ty = float(round(tx)), float(round(ty))
    m = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]], np.float32)
    src = np.asarray(box, dtype=np.float32)
    out = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass in pixel-index coordinates (pixel i spans i-0.5..i+0.5)."""
    # float64: sums in double precision, and never read as a list of points (as a float32 or
    # int32 array of shape (N, 2) would be).
    a = np.asarray(img, dtype=np.float64)
    m = cv2.moments(a)
    if m["m00"] <= 0:
        return (a.shape[1] - 1) / 2.0, (a.shape[0] - 1) / 2.0
    return float(m["m10"] / m["m00"]), float(m["m01"] / m["m00"])


def _crop(a: np.ndarray) -> np.ndarray:
    """The ink cropped to its bounding box (a ValueError when there is none)."""
    bb = bounding_box(a if a.dtype == np.uint8 else a > 0)
    if bb is None:
        raise ValueError("no ink to normalise")
    x, y, w, h = bb
    return a[y : y + h, x : x + w]


@functools.lru_cache(maxsize=4096)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32: the share of each input pixel in each output pixel's area."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    i = np.arange(n_in)[None, :]
    overlap = np.minimum(edges[1:, None], i + 1) - np.maximum(edges[:-1, None], i)
    weights = (np.clip(overlap, 0.0, None) / scale).astype(np.float32)
    weights.flags.writeable = False
    return weights
