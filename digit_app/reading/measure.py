"""Measures the stages share: a mask's box, its connected pieces, its stroke width.

In: a mask (bool, or uint8 with ink nonzero) or a uint8 image. Out: numbers and small arrays:
the bounding box, the 8-connected components with their statistics, the stroke width, a
half-size copy, and the mask grown by its anti-aliased edge (`support`).
Why: cleaning, normalisation, segmentation and the shortcuts for clean drawings measure the
same things the same way; kept below them all, each stage can use them without importing
another.
"""

from __future__ import annotations

import cv2
import numpy as np

# Large clean inputs are checked for stray pieces on a copy halved down to about this side.
ANALYSIS_SIDE = 64
# The relative stroke width measured on a half-size copy (a quarter of the pixels to trace) is
# within -6 % and +18 % of the full-size measure on all 22,000 pendigits drawings (3 ways of
# rendering); decisions at least this far from their limits trust it.
HALF_SIZE_ERROR = 0.25
# Up to this many pieces, each is measured directly (cheaper than OpenCV's statistics).
_FEW_PIECES = 8


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: area over half the perimeter (holes included).

    A stroke of length L and width w has area wL and a perimeter of about 2L, so 2A/P is its
    width whatever the digit's shape, and robust where strokes cross or curve.
    """
    m = np.asarray(mask)
    m8 = as_u8_mask(m)
    area = cv2.countNonZero(m8) if m.dtype == bool else int(m8.sum())
    return stroke_width_u8(m8, area)


def stroke_width_u8(m8: np.ndarray, area: int, bbox: tuple[int, int, int, int] | None = None) -> float:
    """`stroke_width` of a uint8 mask whose area (and maybe bounding box) is known."""
    if area == 0:
        return 0.0
    # Contours of the ink's bounding box with a blank frame: the same as of the whole image.
    x, y, w, h = cv2.boundingRect(m8) if bbox is None else bbox
    framed = cv2.copyMakeBorder(m8[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(framed, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return float(2.0 * area / perimeter) if perimeter > 0 else 1.0


def bounding_box(a: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the nonzero pixels, None when there are none."""
    a = np.asarray(a)
    m8 = a if a.dtype == np.uint8 else as_u8_mask(a != 0)
    x, y, w, h = cv2.boundingRect(m8)
    return None if w == 0 else (int(x), int(y), int(w), int(h))


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, labels, stats) of the 8-connected pieces, as cv2.connectedComponentsWithStats."""
    m8 = mask.view(np.uint8) if mask.dtype == bool and mask.flags.c_contiguous else mask.astype(np.uint8)
    h, w = m8.shape
    # 16-bit labels (faster) whenever they cannot overflow: at most one piece per 2x2 pixels.
    ltype = cv2.CV_16U if ((h + 1) // 2) * ((w + 1) // 2) < 65535 else cv2.CV_32S
    n, labels = cv2.connectedComponents(m8, connectivity=8, ltype=ltype)
    if n > _FEW_PIECES:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=8, ltype=ltype)
        return n, labels, stats
    # OpenCV's statistics cost several labellings; for a few pieces, measure each directly.
    stats = np.zeros((n, 5), np.int32)
    stats[0] = (0, 0, w, h, h * w - cv2.countNonZero(m8))  # the background (not used)
    for i in range(1, n):
        own = (labels == i).view(np.uint8)
        stats[i, :4] = cv2.boundingRect(own)
        stats[i, 4] = cv2.countNonZero(own)
    return n, labels, stats


def one_piece(m8: np.ndarray) -> bool:
    """True when the ink of a 0/255 image is one connected piece, judged on a copy halved down
    to about ANALYSIS_SIDE (pieces closer than the halving are one)."""
    small = m8
    while min(small.shape) >= 2 * ANALYSIS_SIDE:
        small = cv2.threshold(halved(small), 0, 255, cv2.THRESH_BINARY)[1]  # any ink in the 2x2 block
    return cv2.connectedComponents(small, connectivity=8, ltype=cv2.CV_16U)[0] == 2


def halved(image: np.ndarray) -> np.ndarray:
    """Half the size by 2x2 averages (a blank row or column added to odd sides)."""
    h, w = image.shape
    if h % 2 or w % 2:  # even sides: OpenCV's fast 2x2 averaging
        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(image, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)


def support(mask: np.ndarray) -> np.ndarray:
    """The mask grown by 2 px (its pixels plus their anti-aliased edge)."""
    return cv2.dilate(as_u8_mask(mask), np.ones((5, 5), np.uint8)).astype(bool)  # = 2 x 3x3


def as_u8_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as uint8 (a view of a contiguous bool array, no copy); nonzero is ink."""
    m = np.asarray(mask)
    if m.dtype == bool and m.flags.c_contiguous:
        return m.view(np.uint8)
    return m.astype(np.uint8)
