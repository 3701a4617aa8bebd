"""From a drawing, scan or photo to the 28x28 images the model was trained on.

MNIST was made this way: each handwritten digit was scanned, its bounding box scaled
(keeping the aspect ratio, with anti-aliasing) so that the longer side is 20 pixels, and
that 20x20 box pasted into a 28x28 field so that the centre of mass of the ink lands at the
centre. White ink on black, grey edges. A model only reads real handwriting well when it is
shown digits prepared the same way, so this module reproduces that process:

1. `to_ink`: grayscale -> white ink on black. The polarity (dark ink on light paper or the
   reverse) comes from the background level; the background is removed with Otsu's
   threshold, relative to a locally estimated background when the lighting is uneven
   (gradients, shadows); specks, ruled or grid lines and slivers of neighbouring cells cut
   off at the border are dropped. The grey anti-aliasing of the strokes is kept.
2. `normalize_digit`: crop, scale the longer side to 20 px, centre by mass with sub-pixel
   precision in 28x28.
3. `segment` for images holding several digits: connected components, pieces of one digit
   merged, dots dropped, touching digits split, ordered left to right.

Everything is plain numpy/OpenCV and returns the intermediate images (`Stages`) so the UI
can show what the model sees.

Clean inputs take a shortcut through the same functions: a canvas drawing (white strokes on
an exactly black background with a blank margin) needs no polarity or background search, no
percentiles, no uneven-lighting estimate and no border cleaning, so `to_ink` only thresholds
it and checks its pieces (see `_clean_ink`); one drawing in one piece does without even the
threshold, and its stroke is measured on a half-size copy (`_clean_single`). The result is
the general path's, as the tests check, with one exception: the one-digit checker is not asked
on the one-piece shortcut (see ONE_DIGIT_WEIGHT), so with a checker the general path may cut a
piece the shortcut keeps whole. `FAST = False` (or `fast=False`) forces the general path.
Several digits are segmented from one labelling of the image; with a model to score the
candidates, only the pieces that cut no connected group are scored first, and the cuts only
when they could still win.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from digit_app.calibration import scale

SIZE = 28  # the model's input side
BOX = 20  # the longer side of the digit inside it, as in MNIST
# Where MNIST puts the centre of mass, in pixel-index coordinates (pixel i spans i-0.5..i+0.5).
# Measured on the MNIST test set: mean (14.00, 13.99), i.e. the centre of pixel (14, 14), half
# a pixel right of and below the geometric centre 13.5 (= 14.0 in the x+0.5 convention).
# Matching it exactly means an MNIST digit passes through unchanged (no half-pixel blur).
CENTER = SIZE // 2
# Shift by a fraction of a pixel (bilinear) to put the centre of mass exactly at CENTER, or by
# whole pixels as MNIST itself did (within half a pixel, but never blurred).
SUBPIXEL = True

# --- thresholds, relative wherever possible so that they hold at any resolution ------------
MIN_CONTRAST = 24.0  # ink must differ from the background by this much (0..255)
SPECK_FRACTION = 0.02  # components smaller than this share of the largest one are specks
MIN_SPECK_AREA = 3  # ... and below this many pixels always
MIN_DIGIT_SIDE = 4  # px: ink smaller than this is not a digit
FLAT = 0.45  # ink lower than this share of the digits' height is a dash or a mark, not a digit
MIN_ELONGATION = 2.2  # a digit is a stroke: its extent is several stroke widths, a dot is not
# MNIST's stroke width relative to the longer side of the digit (measured on the training set
# with `stroke_width`): median 0.12, 5th-95th percentile 0.08-0.185. Strokes bolder than
# STROKE_RANGE[1] (a fat canvas brush on a small drawing, a marker) are thinned to the median.
# Hairlines are NOT thickened (lower bound 0): area-averaged downscaling already turns a thin
# pen line into a 1-2 px grey stroke, and thickening measured worse on real scans (-0.7 point).
STROKE_TARGET = 0.12
STROKE_RANGE = (0.0, 0.15)
# The shortcut for clean inputs (see `_clean_ink`); False always takes the general path.
FAST = True
# Large clean inputs are checked for stray pieces on a copy halved down to about this side.
ANALYSIS_SIDE = 64
# The relative stroke width measured on a half-size copy (a quarter of the pixels to trace) is
# within -6 % and +18 % of the full-size measure on all 22,000 pendigits drawings (3 ways of
# rendering); decisions at least this far from their limits trust it.
_HALF_SIZE_ERROR = 0.25


@dataclass
class Stages:
    """The intermediate images of one digit, to show the user what the model sees."""

    gray: np.ndarray  # (H, W) uint8, the input as decoded (any polarity)
    ink: np.ndarray  # (H, W) uint8, white ink on black, background removed (whole image)
    mask: np.ndarray  # (H, W) bool, the ink pixels kept (this digit only)
    cropped: np.ndarray  # uint8, the digit's ink cropped to its bounding box
    box20: np.ndarray  # float32 0..1, scaled so that the longer side is 20 px
    final: np.ndarray  # (28, 28) float32 0..1, centred by mass: the model's input
    bbox: tuple[int, int, int, int]  # (x, y, w, h) of the digit in the input image
    inverted: bool = False  # True when dark ink on light paper was detected (and inverted)
    method: str = "otsu"  # how the background was removed: "otsu", "adaptive" or "clean"


@dataclass
class DigitCrop:
    """One digit found in an image: where it is, and its 28x28 model input."""

    box: tuple[int, int, int, int]  # (x, y, w, h) in the input image
    image: np.ndarray  # (28, 28) float32 0..1
    stages: Stages | None
    # The model's (10,) probabilities for `image` when segmentation already asked it, and the
    # scorer that answered (so that they are only reused for the same model).
    probabilities: np.ndarray | None = field(default=None, repr=False)
    scored_by: Callable | None = field(default=None, repr=False)


@dataclass
class InkInfo:
    """What `to_ink` decided, for display and debugging."""

    inverted: bool
    method: str
    background: float  # background level of the input (0..255)
    contrast: float  # ink level minus background, 0 when no ink was found
    notes: list[str] = field(default_factory=list)
    # The connected components of the returned mask when they were computed on the way
    # (count, labels, stats of `_components`, with labels of dropped pieces left out of
    # `kept`), so that segmentation does not label the image again.
    components: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)


# =============================================================================================
# 1. Grayscale -> ink
# =============================================================================================


def _as_gray_u8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    a = np.nan_to_num(a.astype(np.float32))
    if a.size and a.max() <= 1.0 and a.min() >= 0.0:
        a = a * 255.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


def _light_background(gray: np.ndarray) -> bool:
    """True for dark ink on light paper.

    The background is both the majority of the pixels and what the border shows; each cue
    alone fails somewhere (a bold digit filling a small bitmap; a photo of paper on a dark
    table), so the two shares of light pixels are averaged.
    """
    lo, hi = np.percentile(gray, [0.5, 99.5])
    if hi - lo < 1:
        return bool(gray.flat[0] >= 128)
    mid = (lo + hi) / 2.0
    b = max(1, min(gray.shape) // 20)
    border = np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(), gray[:, -b:].ravel()])
    light_share = 0.5 * float((gray > mid).mean()) + 0.5 * float((border > mid).mean())
    return light_share > 0.5


def _background_surface(paper: np.ndarray) -> np.ndarray:
    """Smooth estimate of the local paper level (ink dark), from a downscaled copy.

    A large median ignores the strokes (a minority of any window wider than a few strokes)
    and follows gradients and shadows; a blur then smooths it.
    """
    h, w = paper.shape
    f = min(1.0, 256.0 / max(h, w))
    small = cv2.resize(paper, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    k = min(_odd(min(small.shape) * 0.4), 255)
    pad = k // 2
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    bg = cv2.medianBlur(padded, k)[pad:-pad, pad:-pad]
    bg = cv2.GaussianBlur(bg, (0, 0), k / 4.0, borderType=cv2.BORDER_REPLICATE)
    if f < 1.0:
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    return bg.astype(np.float32)


def _uneven(paper: np.ndarray, contrast: float) -> bool:
    """Uneven lighting (gradient, vignetting, shadow) shows as a paper level varying along the border.

    Judged from the medians of 32 stretches of the border, so ink touching the border in a
    few places does not count. Bitmaps (a handful of grey levels) and tiny images are even.
    """
    h, w = paper.shape
    if min(h, w) < 48 or np.count_nonzero(np.bincount(paper.ravel(), minlength=256)) <= 4:
        return False
    b = max(2, min(h, w) // 25)
    strips = [paper[:b], paper[-b:], paper[:, :b].T, paper[:, -b:].T]
    medians = [float(np.median(piece)) for s in strips for piece in np.array_split(s, 8, axis=1)]
    spread = float(np.percentile(medians, 90) - np.percentile(medians, 10))
    return spread > max(12.0, 0.2 * contrast)


def to_ink(gray: np.ndarray, multi: bool = False, fast: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale of either polarity -> (ink uint8 white-on-black, mask bool) for the whole image.

    `multi`: the image holds a row of digits (lines are judged against the row, and pieces at
    the border are kept, since digits at both ends of a row often touch it).
    `fast`: take the shortcut for clean inputs (default `FAST`); False forces the general path.
    """
    ink, mask, _ = to_ink_detail(gray, multi, fast)
    return ink, mask


def to_ink_detail(
    gray: np.ndarray, multi: bool = False, fast: bool | None = None
) -> tuple[np.ndarray, np.ndarray, InkInfo]:
    """`to_ink` plus what was decided (polarity, method, contrast)."""
    gray = _as_gray_u8(gray)
    if FAST if fast is None else fast:
        done = _clean_ink(gray, multi)
        if done is not None:
            return done
    h, w = gray.shape
    empty = (np.zeros((h, w), np.uint8), np.zeros((h, w), bool))
    inverted = _light_background(gray)
    paper = gray if inverted else 255 - gray  # paper light, ink dark
    paper_f = paper.astype(np.float32)
    lo, hi = np.percentile(paper_f, [0.5, 99.5])
    light = paper_f[paper_f > (lo + hi) / 2.0]
    # The paper level: the median of the light side, whatever share of the image the ink covers.
    bg_level = float(np.median(light)) if light.size else float(np.median(paper_f))
    contrast_guess = bg_level - float(lo)
    if contrast_guess < MIN_CONTRAST:
        # Ink on under 0.5% of the image (a small digit drawn with a thin pen on the canvas,
        # a small digit on a large page) is not in the percentiles: its darkest spots are,
        # once single-pixel noise is filtered out.
        contrast_guess = bg_level - float(cv2.minMaxLoc(cv2.medianBlur(paper, 3))[0])
    info = InkInfo(inverted, "otsu", float(np.median(gray)), 0.0)
    if contrast_guess < MIN_CONTRAST:
        info.notes.append("uniform image")
        return (*empty, info)

    if _uneven(paper, contrast_guess):
        info.method = "adaptive"
        diff = _background_surface(paper) - paper_f
    else:
        diff = bg_level - paper_f
    diff = np.clip(diff, 0, 255)

    # Otsu splits ink from paper; the split is real only when the two classes are far apart
    # compared to the spread of the paper (texture, noise) and by MIN_CONTRAST at least.
    d8 = np.clip(np.round(diff), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thresh = float(otsu)
    strong = diff > thresh
    if not strong.any() or strong.all():
        info.notes.append("no ink above the background")
        return (*empty, info)
    paper_d = diff[~strong]
    floor = float(np.median(paper_d))
    spread = 1.4826 * float(np.median(np.abs(paper_d - floor)))
    level = float(np.percentile(diff[strong], 90))
    info.contrast = level - floor
    if level - floor < max(MIN_CONTRAST, 3.0 * spread):
        info.notes.append("contrast too low")
        return (*empty, info)
    # Hysteresis: fainter pixels count as ink when they connect to clearly dark ones, so a
    # stroke that fades (a light pen, a fast flick) is not broken into pieces.
    weak = diff > max(floor + 0.6 * (thresh - floor), floor + 3.0 * spread + 1.0)
    n, labels = cv2.connectedComponents((weak | strong).astype(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[labels[strong]] = True
    seeded[0] = False
    mask = seeded[labels]

    mask = clean_mask(mask, info.notes, multi)
    if not mask.any():
        return (*empty, info)
    # Grey levels: distance from the background stretched to 0..1, kept near the strokes only.
    support = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    value = np.clip((diff - floor) / max(level - floor, 1.0), 0.0, 1.0)
    value[~support] = 0.0
    ink = np.round(value * 255).astype(np.uint8)
    return ink, mask, info


def _clean_ink(gray: np.ndarray, multi: bool) -> tuple[np.ndarray, np.ndarray, InkInfo] | None:
    """`to_ink_detail` for a clean input, or None when `gray` is not one.

    Clean: white ink on an exactly black background covering most of the image, a blank
    margin, and enough pure white (255) stroke cores, as the drawing canvas gives. For such an
    image every decision of the general path is known without computing it: not inverted
    (the background is the majority and the border), background 0, contrast and ink level 255
    (so the ink keeps its grey levels unchanged), even lighting (a blank border), no border
    slivers. What is left is the real work: Otsu's threshold, the hysteresis, specks, and
    lines when the ink spans enough of the image for one; they are done as the general path
    does them, from one labelling of the image. A large image made of one piece (checked on a
    downscaled copy) has no specks to drop and is not labelled at full size at all.
    """
    h, w = gray.shape
    n = h * w
    ink_box = _clean_ink_box(gray)
    if ink_box is None:
        return None
    if ink_box[2] == 0:
        info = InkInfo(False, "otsu", 0.0, 0.0, ["uniform image"])
        return np.zeros((h, w), np.uint8), np.zeros((h, w), bool), info
    thresh = float(cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])
    if thresh < 1:
        return None  # (the general path's weak threshold would exceed the strong one)
    weak_level = max(0.6 * thresh, 1.0)
    weak = cv2.threshold(gray, weak_level, 255, cv2.THRESH_BINARY)[1]  # 0/255
    info = InkInfo(False, "clean", 0.0, 255.0)
    comps = None
    if not multi and min(h, w) >= 2 * ANALYSIS_SIDE and _one_piece(weak):
        # One piece: it holds the white core (seeded) and is the largest (no speck to drop).
        mask = cv2.threshold(gray, weak_level, 1, cv2.THRESH_BINARY)[1].view(bool)
    else:
        # Labelled within the ink's bounding box (nothing lies outside it), numbered as the
        # whole image would be (the same raster order), in whole-image coordinates.
        bx, by, bw, bh = cv2.boundingRect(weak)
        count, box_labels, stats = _components(weak[by : by + bh, bx : bx + bw])
        if count > 65:
            return None  # noise rather than a drawing: the general path
        stats[1:, cv2.CC_STAT_LEFT] += bx
        stats[1:, cv2.CC_STAT_TOP] += by
        labels = np.zeros((h, w), box_labels.dtype)
        labels[by : by + bh, bx : bx + bw] = box_labels
        # Hysteresis: the pieces holding a pixel above Otsu's threshold.
        kept = np.zeros(count, bool)
        for i in range(1, count):
            x, y, cw, ch = (int(v) for v in stats[i, :4])
            own = (labels[y : y + ch, x : x + cw] == i).view(np.uint8)
            kept[i] = cv2.minMaxLoc(gray[y : y + ch, x : x + cw], own)[1] > thresh
        kept = _keep_unspecked(kept, stats[:, cv2.CC_STAT_AREA], n, info.notes)
        if kept[1:].all():
            mask = cv2.threshold(gray, weak_level, 1, cv2.THRESH_BINARY)[1].view(bool)
        else:
            mask = kept[labels]
        comps = (count, labels, stats, kept)
    if _may_hold_lines(mask, multi):
        cleaned = remove_lines(mask, info.notes, multi)
        if cleaned is not mask:
            mask = remove_specks(cleaned, info.notes)
            comps = None
    # The ink: the image where the mask grown by 2 px (`_support`) is, worked out in the mask's
    # bounding box and 2 px around it, outside of which it is blank.
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    x0, y0, x1, y1 = max(0, x - 2), max(0, y - 2), min(w, x + bw + 2), min(h, y + bh + 2)
    ink = np.zeros((h, w), np.uint8)
    if bw:
        support = cv2.dilate(mask[y0:y1, x0:x1].view(np.uint8), np.ones((5, 5), np.uint8))  # = 2 x 3x3
        ink[y0:y1, x0:x1] = cv2.bitwise_and(gray[y0:y1, x0:x1], gray[y0:y1, x0:x1], mask=support)
    info.components = comps
    return ink, mask, info


def _clean_ink_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box of the ink (nonzero pixels) of a clean input (see `_clean_ink`), None
    if the input is not clean; (0, 0, 0, 0) for a blank image."""
    h, w = gray.shape
    n = h * w
    box = cv2.boundingRect(gray)
    x, y, bw, bh = box
    if bw == 0:
        return (0, 0, 0, 0)
    b = max(2, min(h, w) // 20)  # the widest border any general-path test looks at
    if x < b or y < b or x + bw > w - b or y + bh > h - b:
        return None
    crop = gray[y : y + bh, x : x + bw]  # all the ink
    nnz = cv2.countNonZero(crop)
    if 2 * nnz >= n:
        return None  # the black background is not the majority
    white = cv2.countNonZero(cv2.inRange(crop, 255, 255))
    # The 99.5th percentile of the image (its contrast) and the 90th of the ink (the level it
    # is stretched to) are both 255, one more pixel of margin for the percentiles' rounding.
    if white < n - math.floor(0.995 * (n - 1)) + 1 or white < nnz - math.floor(0.9 * (nnz - 1)) + 1:
        return None
    return box


def _halved(image: np.ndarray) -> np.ndarray:
    """Half the size by 2x2 averages (a blank row or column added to odd sides)."""
    h, w = image.shape
    if h % 2 or w % 2:  # even sides: OpenCV's fast 2x2 averaging
        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(image, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)


def _one_piece(m8: np.ndarray) -> bool:
    """True when the ink of a 0/255 image is one connected piece, judged on a copy halved down
    to about ANALYSIS_SIDE (pieces closer than the halving are one)."""
    small = m8
    while min(small.shape) >= 2 * ANALYSIS_SIDE:
        small = cv2.threshold(_halved(small), 0, 255, cv2.THRESH_BINARY)[1]  # any ink in the 2x2 block
    return cv2.connectedComponents(small, connectivity=8, ltype=cv2.CV_16U)[0] == 2


def _keep_unspecked(
    kept: np.ndarray, areas: np.ndarray, n_pixels: int, notes: list[str] | None
) -> np.ndarray:
    """`remove_specks` on the pieces flagged in `kept` (index 0, the background, never kept)."""
    areas = np.where(kept, areas, 0).astype(np.float64)
    areas[0] = 0
    limit = max(MIN_SPECK_AREA, SPECK_FRACTION * areas.max(), 1e-4 * n_pixels)
    keep = kept & (areas >= limit)
    keep[0] = False
    if keep.sum() == 0 and kept.any():
        keep[int(np.argmax(areas))] = True
    if notes is not None and (kept & ~keep).any():
        notes.append(f"removed {int((kept & ~keep).sum())} speck(s)")
    return keep


# =============================================================================================
# Cleaning: specks, ruled/grid lines, slivers of neighbouring cells
# =============================================================================================


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
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


_FEW_PIECES = 8


def _line_kernel(horizontal: bool, length: int, ink_height: int, multi: bool) -> int | None:
    """The run length (px) that makes a ruled line in `remove_lines`, or None when none fits."""
    if length < 24:
        return None
    if multi and horizontal:
        # In a row of digits, a horizontal line longer than half the row and much longer
        # than the digits are tall is never part of a digit.
        k = max(12, int(round(max(0.5 * length, 1.5 * ink_height))))
    else:
        # A vertical one must span the whole height (a frame), or it may well be a 1.
        k = max(12, int(round(0.9 * length)))
    return None if k > length else k


def _too_short(bbox: tuple[int, int, int, int], shape: tuple[int, int], horizontal: bool, k: int) -> bool:
    """True when no run of the ink inside `bbox` can survive an opening with a k-long kernel.

    A run must be k long, or half of that where it reaches the image border (the border
    counts as ink for the erosion).
    """
    x, y, bw, bh = bbox
    start, extent, length = (x, bw, shape[1]) if horizontal else (y, bh, shape[0])
    at_border = start == 0 or start + extent == length
    return extent < (k - k // 2 if at_border else k)


def _may_hold_lines(mask: np.ndarray, multi: bool) -> bool:
    """False when `remove_lines` certainly finds no line: no run of the ink is long enough."""
    m8 = mask.view(np.uint8)
    bbox = cv2.boundingRect(m8)
    if bbox[2] == 0:
        return False
    h, w = mask.shape
    for horizontal in (True, False):
        k = _line_kernel(horizontal, w if horizontal else h, bbox[3], multi)
        if k is None or _too_short(bbox, mask.shape, horizontal, k):
            continue
        kernel = np.ones((1, k) if horizontal else (k, 1), np.uint8)
        if cv2.countNonZero(cv2.erode(m8, kernel)):  # the opening is empty iff the erosion is
            return True
    return False


def remove_lines(mask: np.ndarray, notes: list[str] | None = None, multi: bool = False) -> np.ndarray:
    """Drop long straight thin lines (ruled paper, form grids, the line under an amount).

    A line is a horizontal or vertical run spanning most of the image, thin across. It is kept
    when the rest of the ink is as wide as the line (the bar of a 7 or the base of a 2 in a
    tightly cropped image) unless `multi` (a row of digits, where a line under or through the
    whole row is never a digit), and whenever it is (nearly) all the ink (a lone 1, a dash).
    """
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    removed = np.zeros(mask.shape, bool)
    total = int(mask.sum())
    bbox = cv2.boundingRect(m8)
    ink_height = bbox[3] if bbox[3] else h
    for horizontal in (True, False):
        length = w if horizontal else h
        other = h if horizontal else w
        k = _line_kernel(horizontal, length, ink_height, multi)
        if k is None or _too_short(bbox, mask.shape, horizontal, k):
            continue  # no run of ink that long
        kernel = np.ones((1, k) if horizontal else (k, 1), np.uint8)
        opened = cv2.morphologyEx(m8, cv2.MORPH_OPEN, kernel).astype(bool)
        if not opened.any():
            continue
        prof = opened.sum(axis=1 if horizontal else 0)
        rows = np.flatnonzero(prof > 0)
        for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
            if len(run) == 0 or len(run) > max(2, 0.08 * other):
                continue  # thick: a blob or a filled area, not a ruled line
            if multi and not horizontal and 0.1 * other < run[0] and run[-1] < 0.9 * other:
                continue  # a vertical stroke inside a row of digits: a 1, not a frame
            band = np.zeros(mask.shape, bool)
            lo, hi = max(0, run[0] - 1), min(other, run[-1] + 2)  # + its anti-aliased edge
            if horizontal:
                band[lo:hi, :] = True
            else:
                band[:, lo:hi] = True
            line = cv2.dilate(opened.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & band & mask
            rest = mask & ~line & ~removed
            if rest.sum() < max(0.1 * total, MIN_SPECK_AREA * 4):
                continue
            if not multi:
                # A ruled or grid line runs from edge to edge; a digit's bar stops short.
                line_along = np.flatnonzero(line.any(axis=0 if horizontal else 1))
                if line_along[0] > 0.04 * length or line_along[-1] < 0.96 * length - 1:
                    continue
                span = np.flatnonzero(rest.any(axis=0 if horizontal else 1))
                if span[-1] - span[0] + 1 >= 0.85 * (line_along[-1] - line_along[0] + 1):
                    continue  # the digit is as wide as the line: part of it, or a tight crop
            removed |= line
    if not removed.any():
        return mask
    if notes is not None:
        notes.append("removed ruled/grid lines")
    return mask & ~removed


def remove_border_slivers(mask: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Drop pieces cut off at the image border (neighbouring cells) that are not the digit.

    A piece touching the border is kept when it lies close beside the main stroke (a 5's
    flag, the broken-off half of a 3 that runs off the cell); otherwise it goes when it is
    small next to the digit or hugs the edge.
    """
    h, w = mask.shape
    n, labels, stats = _components(mask)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    main_area = float(areas.max())
    near_px = 0.06 * max(h, w)
    dist_to_main = None
    keep = np.ones(n, bool)
    keep[0] = False
    dropped = 0
    mx, my, mw, mh, _ = stats[main]
    for i in range(1, n):
        if i == main:
            continue
        x, y, cw, ch, area = stats[i]
        left, right, top, bottom = x == 0, x + cw == w, y == 0, y + ch == h
        if not (left or right or top or bottom):
            continue
        if dist_to_main is None:
            dist_to_main = cv2.distanceTransform((labels != main).astype(np.uint8), cv2.DIST_L2, 3)
        gap = float(dist_to_main[labels == i].min())
        x_overlap = min(x + cw, mx + mw) - max(x, mx)
        y_overlap = min(y + ch, my + mh) - max(y, my)
        beside = x_overlap >= 0.3 * cw or y_overlap >= 0.3 * ch
        if gap <= near_px and beside:
            continue
        # Hugging the edge: thin along the side it touches.
        hugging = ((left or right) and cw <= 0.15 * w) or ((top or bottom) and ch <= 0.15 * h)
        if area < 0.15 * main_area or hugging:
            keep[i] = False
            dropped += 1
    if not dropped:
        return mask
    if notes is not None:
        notes.append(f"removed {dropped} piece(s) at the border")
    return keep[labels]


def remove_specks(mask: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Drop components that are tiny next to the largest one (dust, paper texture, JPEG noise)."""
    n, labels, stats = _components(mask)
    if n <= 1:
        return mask
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    areas[0] = 0
    h, w = mask.shape
    limit = max(MIN_SPECK_AREA, SPECK_FRACTION * areas.max(), 1e-4 * h * w)
    keep = areas >= limit
    keep[0] = False
    if keep.sum() == 0:
        keep[int(np.argmax(areas))] = True  # the speck test on the whole image is done later
    if notes is not None and (~keep[1:]).any():
        notes.append(f"removed {int((~keep[1:]).sum())} speck(s)")
    return keep[labels]


def clean_mask(mask: np.ndarray, notes: list[str] | None = None, multi: bool = False) -> np.ndarray:
    """Specks, lines and border slivers removed, in the order that keeps each test meaningful."""
    mask = remove_specks(mask, notes)
    cleaned = remove_lines(mask, notes, multi)
    if not multi:
        cleaned = remove_border_slivers(cleaned, notes)
    if cleaned is mask:
        return mask  # nothing else removed: a second speck pass would remove nothing either
    return remove_specks(cleaned, notes)


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: area over half the perimeter (holes included).

    A stroke of length L and width w has area wL and a perimeter of about 2L, so 2A/P is its
    width whatever the digit's shape, and robust where strokes cross or curve.
    """
    m = np.asarray(mask)
    m8 = _as_u8_mask(m)
    area = cv2.countNonZero(m8) if m.dtype == bool else int(m8.sum())
    return _stroke_width(m8, area)


def _stroke_width(m8: np.ndarray, area: int, bbox: tuple[int, int, int, int] | None = None) -> float:
    """`stroke_width` of a uint8 mask whose area (and maybe bounding box) is known."""
    if area == 0:
        return 0.0
    # Contours of the ink's bounding box with a blank frame: the same as of the whole image.
    x, y, w, h = cv2.boundingRect(m8) if bbox is None else bbox
    framed = cv2.copyMakeBorder(m8[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(framed, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return float(2.0 * area / perimeter) if perimeter > 0 else 1.0


def _as_u8_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as uint8 (a view of a contiguous bool array, no copy); nonzero is ink."""
    m = np.asarray(mask)
    if m.dtype == bool and m.flags.c_contiguous:
        return m.view(np.uint8)
    return m.astype(np.uint8)


def is_digit_like(mask: np.ndarray) -> bool:
    """False for nothing, a speck or a dot: a digit is a stroke several widths long."""
    m = np.asarray(mask)
    m8 = _as_u8_mask(m if m.dtype == bool else m != 0)
    area = cv2.countNonZero(m8)
    if area < MIN_SPECK_AREA * 2:
        return False
    bbox = cv2.boundingRect(m8)
    side = max(bbox[2], bbox[3])
    if side < MIN_DIGIT_SIDE:
        return False
    width = _stroke_width(m8, area, bbox) if m.dtype == bool else stroke_width(mask)
    return side >= MIN_ELONGATION * max(width, 1.0)


# =============================================================================================
# 2. One digit -> 28x28, MNIST style
# =============================================================================================


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass in pixel-index coordinates (pixel i spans i-0.5..i+0.5)."""
    # float64: sums in double precision, and never read as a list of points (as a float32 or
    # int32 array of shape (N, 2) would be).
    a = np.asarray(img, dtype=np.float64)
    m = cv2.moments(a)
    if m["m00"] <= 0:
        return (a.shape[1] - 1) / 2.0, (a.shape[0] - 1) / 2.0
    return float(m["m10"] / m["m00"]), float(m["m01"] / m["m00"])


def _bbox(a: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the nonzero pixels, None when there are none."""
    a = np.asarray(a)
    m8 = a if a.dtype == np.uint8 else _as_u8_mask(a != 0)
    x, y, w, h = cv2.boundingRect(m8)
    return None if w == 0 else (int(x), int(y), int(w), int(h))


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


def normalize_digit(ink: np.ndarray, stroke: bool = True) -> np.ndarray:
    """White-on-black ink of one digit (any size) -> (28, 28) float32 0..1, MNIST style.

    `stroke`: bring a stroke much thinner or bolder than MNIST's to MNIST's width first.
    """
    return _normalize(ink, stroke)[2]


def _crop(a: np.ndarray) -> np.ndarray:
    bb = _bbox(a if a.dtype == np.uint8 else a > 0)
    if bb is None:
        raise ValueError("no ink to normalise")
    x, y, w, h = bb
    return a[y : y + h, x : x + w]


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
        small = cv2.threshold(_halved(a), level - 1, 1, cv2.THRESH_BINARY)[1]
        rel = _stroke_width(small, cv2.countNonZero(small)) / max(small.shape)
        if STROKE_RANGE[0] * (1.0 + _HALF_SIZE_ERROR) <= rel <= STROKE_RANGE[1] / (1.0 + _HALF_SIZE_ERROR):
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


def _normalize(
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


# =============================================================================================
# Single digit
# =============================================================================================


def preprocess_single(image: np.ndarray, fast: bool | None = None) -> Stages | None:
    """Grayscale or ink image holding one digit -> its Stages, or None when there is no digit.

    `fast`: as in `to_ink` (False forces the general path).
    """
    gray = _as_gray_u8(image)
    if FAST if fast is None else fast:
        st = _clean_single(gray)
        if st is not _UNSURE:
            return st
    # `to_ink_detail` already blanked the ink outside the support of its mask.
    ink, mask, info = to_ink_detail(gray, fast=fast)
    if not is_digit_like(mask):
        return None
    return _stages(gray, ink, mask, info)


_UNSURE = object()  # `_clean_single` leaves the image to the general path
_DISC5 = np.ones((5, 5), np.uint8)  # growing by it is `_support`'s 2 px
# Pixels brighter than this are in the mask whatever Otsu's threshold (at most 254) is.
_ALWAYS_INK = int(0.6 * 254)
# The mask shown for a clean drawing: 0.6 x a threshold midway between black and white, what
# the general path's hysteresis gives for a canvas (whose Otsu threshold is about there).
_CLEAN_MASK_LEVEL = int(0.6 * 128)
# The elongation test of a clean drawing is trusted when this far above its limit (the mask at
# half the peak, used here, and the general path's measure within 11 % of each other on all
# 22,000 pendigits drawings); nearer, the general path decides.
_SURE_ELONGATION = 1.25 * MIN_ELONGATION


def _clean_single(gray: np.ndarray) -> Stages | None | object:
    """`preprocess_single` of a clean drawing (see `_clean_ink`), or `_UNSURE`.

    The lean branch for the canvas: a drawing whose ink the general path would keep whole
    (one piece, every grey edge pixel within the 2 px `_support` of its bright core) is its
    own ink, so neither Otsu's threshold nor a labelling is needed; its stroke is measured
    once, at half the peak, which is exactly what `adjust_stroke` measures and, with a margin,
    decides `is_digit_like`. The 28x28 result is the general path's. Anything else (specks,
    pieces, lines, faint edges, a near-dot) is left to the general path.
    """
    box = _clean_ink_box(gray)
    if box is None:
        return _UNSURE
    if box[2] == 0:
        return None
    h, w = gray.shape
    for horizontal in (True, False):
        k = _line_kernel(horizontal, w if horizontal else h, box[3], False)
        if k is not None and not _too_short(box, gray.shape, horizontal, k):
            return _UNSURE
    x, y, bw, bh = box
    crop = gray[y : y + bh, x : x + bw]
    core = cv2.threshold(crop, _ALWAYS_INK, 255, cv2.THRESH_BINARY)[1]
    if cv2.countNonZero(cv2.subtract(crop, cv2.dilate(core, _DISC5))) or not _one_piece(core):
        return _UNSURE
    # The stroke at half the peak (>= 128): what `adjust_stroke` measures. First on a half-size
    # copy; at full size only when a decision is too close to call from it.
    small = _halved(crop)
    small_half = cv2.threshold(small, 127, 1, cv2.THRESH_BINARY)[1]
    small_area = cv2.countNonZero(small_half)
    small_box = cv2.boundingRect(small_half)
    side = 2 * max(small_box[2], small_box[3])
    rel = 2 * _stroke_width(small_half, small_area, small_box) / max(side, 1)
    sure = 1.0 + _HALF_SIZE_ERROR
    if (
        small_area >= MIN_SPECK_AREA
        and side >= 4 * MIN_DIGIT_SIDE
        and rel * sure * _SURE_ELONGATION <= 1.0  # certainly elongated (a digit)
        and STROKE_RANGE[0] * sure <= rel <= STROKE_RANGE[1] / sure  # certainly left as it is
    ):
        cropped = crop
    else:
        half = cv2.threshold(crop, 127, 1, cv2.THRESH_BINARY)[1]  # >= 128: `adjust_stroke`'s mask
        area = cv2.countNonZero(half)
        half_box = cv2.boundingRect(half)
        side = max(half_box[2], half_box[3])
        width = _stroke_width(half, area, half_box)
        if (
            area < 4 * MIN_SPECK_AREA
            or side < 2 * MIN_DIGIT_SIDE
            or side < _SURE_ELONGATION * max(width, 1.0)
        ):
            return _UNSURE
        cropped = adjust_stroke(crop, width)
    box20 = scale_to_box(cropped)
    ink = gray.view()
    ink.flags.writeable = False  # the ink is the image itself
    mask = gray > _CLEAN_MASK_LEVEL
    return Stages(gray, ink, mask, cropped, box20, center_in_field(box20), box, False, "clean")


def _support(mask: np.ndarray) -> np.ndarray:
    """The mask grown by 2 px (its pixels plus their anti-aliased edge)."""
    return cv2.dilate(_as_u8_mask(mask), np.ones((5, 5), np.uint8)).astype(bool)  # = 2 x 3x3


def _stages(
    gray: np.ndarray,
    ink: np.ndarray,
    mask: np.ndarray,
    info: InkInfo,
    normalized: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    bb: tuple[int, int, int, int] | None = None,
) -> Stages | None:
    """The Stages of one digit's ink; `bb`: the ink's bounding box when already known."""
    bb = _bbox(ink) if bb is None else bb
    if bb is None:
        return None
    cropped, box, final = normalized if normalized is not None else _normalize(ink, bb=bb)
    return Stages(gray, ink, mask, cropped, box, final.astype(np.float32), bb, info.inverted, info.method)


# =============================================================================================
# 3. Several digits
# =============================================================================================


@dataclass
class _Group:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int
    labels: list[int]
    area: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def merged(self, other: _Group) -> _Group:
        return _Group(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            self.labels + other.labels,
            self.area + other.area,
        )


def _reference_height(groups: list[_Group]) -> float:
    """Typical digit height: the area-weighted upper heights of the pieces."""
    hs = np.array([g.h for g in groups], float)
    areas = np.array([g.area for g in groups], float)
    order = np.argsort(hs)
    cum = np.cumsum(areas[order]) / areas.sum()
    return float(hs[order][np.searchsorted(cum, 0.5)])


Scorer = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, 10) probabilities
Checker = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N,) P(one digit)


@dataclass
class Piece:
    """One digit's place in the image: its box and which ink pixels belong to it."""

    box: tuple[int, int, int, int]  # (x, y, w, h)
    mask: np.ndarray  # (h, w) bool, the pixels of the box that belong to this digit
    # Filled in when segmentation asked the model about this piece: the scorer's (10,)
    # probabilities, its (cropped, box20, final) images and its ink `(x0, y0, ink)`.
    probabilities: np.ndarray | None = field(default=None, repr=False)
    normalized: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    ink: tuple[int, int, np.ndarray] | None = field(default=None, repr=False)


def segment(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the digits in a cleaned ink mask, left to right."""
    return [p.box for p in segment_pieces(mask)]


def segment_pieces(
    mask: np.ndarray,
    ink: np.ndarray | None = None,
    scorer: Scorer | None = None,
    components: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None,
    temperature: float = 1.0,
    checker: Checker | None = None,
) -> list[Piece]:
    """The digits of a cleaned ink mask, left to right.

    Connected components; dots and specks dropped; pieces of one digit merged; leftovers
    flatter than a digit (dashes, remains of an underline) dropped; groups too wide for one
    digit split at the columns with the least ink. With a `scorer` (the model), a group that
    may hold several digits is split the way the model reads most confidently.
    `components`: the mask's labelling when already done (`InkInfo.components`).
    """
    if components is None:
        n, labels, stats = _components(np.asarray(mask).astype(bool))
        kept = np.ones(n, bool)
    else:
        n, labels, stats, kept = components
    groups = [
        _Group(int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3]), [i], int(s[4]))
        for i, s in enumerate(stats)
        if i > 0 and kept[i]
    ]
    if not groups:
        return []
    ref = _reference_height(groups)
    # Dots and specks (decimal points, dust): small in both directions.
    groups = [g for g in groups if max(g.w, g.h) >= 0.3 * ref]
    if not groups:
        return []
    # Merge pieces of one digit: strong overlap in x (two strokes of a 4, a 5's flag, broken strokes).
    groups.sort(key=lambda g: g.x0)
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _same_digit(groups[i], groups[j], ref):
                    groups[i] = groups[i].merged(groups[j])
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    ref = _reference_height(groups)
    # Leftovers flatter than a digit (dashes, underlines' remains), and groups made only of
    # low bars: an "=" closing an amount is tall as a pair, yet neither of its bars is.
    groups = [g for g in groups if g.h >= FLAT * ref and not _only_bars(g, stats, ref)]
    groups.sort(key=lambda g: g.x0)
    masks = [_label_mask(labels[g.y0 : g.y1, g.x0 : g.x1], g.labels) for g in groups]
    if scorer is not None and ink is not None:
        pieces = _read_row(groups, masks, ref, ink, scorer, temperature, checker)
    else:
        pieces = [p for g, m in zip(groups, masks) for p in _split_heuristic(g, m, ref)]
    pieces.sort(key=lambda p: p.box[0] + p.box[2] / 2.0)
    return pieces


def _only_bars(g: _Group, stats: np.ndarray, ref: float) -> bool:
    """Whether every stroke of a group is a low bar (an "=", a long "-"): lower than FLAT of
    the row and at least twice as wide as high. A digit broken into low pieces has some that
    are not bars, and stays."""
    return all(stats[i][3] < FLAT * ref and stats[i][2] >= 2 * stats[i][3] for i in g.labels)


def _label_mask(labels: np.ndarray, wanted: list[int]) -> np.ndarray:
    """`np.isin(labels, wanted)`, faster for the usual one or few labels."""
    if len(wanted) > 4:
        return np.isin(labels, wanted)
    out = labels == wanted[0]
    for label in wanted[1:]:
        out |= labels == label
    return out


# --- segmentation by recognition ------------------------------------------------------------
# Over-segment (every group cut near its ink minima into slices about a quarter of a digit
# wide, along paths that weave around the ink), then choose how to join consecutive slices
# into digits by dynamic programming: the best path maximises the sum over its digits of
# log(model confidence) + log(shape prior). The prior says what a digit looks like next to
# its neighbours: about 0.75 of the row's height wide (a 1 narrower, rarely more than 1.2),
# not much shorter than the row, and shaped like the class the model reads in it.
# The weights were chosen on synthetic strings of held-out MNIST digits, many touching
# (`python -m benchmarks.strings`); the real cheques stay a held-out measure.
SLICE = 0.2  # slice width, relative to the row height
MAX_SLICES = 8  # a digit spans at most this many slices
PRIOR_WEIGHT = 0.25
CUT_COST = 0.5  # in log-confidence: a cut must make the digits that much more certain
# Weight of log P(one digit) from the one-digit checker (`training.one_digit`) in a reading's
# score. Chosen with version 6 and a scratch checker of the same design on 300 synthetic strings
# per row (seed 0): weight 1 took strings whose neighbours touch from 78.0 to 88.7% (35% touching)
# and 51.7 to 68.7% (all); weight 2 read them 89.3 / 68.0%, weight 4 88.3 / 66.0%. The cheques,
# read then too (47.0 -> 52.0 / 50.2 / 48.2%), picked 1 over 2. The shipped checker: see
# BENCHMARKS.md (cheques 49.44%).
# Not asked on the clean one-piece path (`_clean_one_piece_row`, most drawings): there it split
# wide single 0s and flagged 1s (pendigits as the Draw page reads them 98.07 -> 97.82%), and
# left out it changed none of the strings or cheques read.
ONE_DIGIT_WEIGHT = 1.0


def _shape_prior(w: float, h: float, ref: float) -> float:
    a = w / ref
    if a > 0.75:
        lp = -0.5 * ((a - 0.75) / 0.3) ** 2
    elif a < 0.25:
        lp = -0.5 * ((0.25 - a) / 0.15) ** 2
    else:
        lp = 0.0
    hr = h / ref
    if hr < 0.6:
        lp -= 0.5 * ((0.6 - hr) / 0.15) ** 2
    return PRIOR_WEIGHT * lp


# MNIST's digits' width / height, per class: median and spread of its log (training set, ink
# above 80). Two touching digits read as one are often wider than the one digit the model
# names, and half a digit narrower: a reading pays for a shape unusual for its class.
ASPECT_LOG = np.array([-0.105, -0.916, -0.051, -0.223, -0.223, -0.105, -0.357, -0.223, -0.288, -0.357])
ASPECT_SPREAD = np.array([0.199, 0.421, 0.218, 0.214, 0.214, 0.264, 0.211, 0.226, 0.226, 0.179])
ASPECT_WEIGHT = 1.0
ASPECT_SLACK = 1.5  # real writing varies more than MNIST


def _reading_score(p: np.ndarray, w: float, h: float, temperature: float = 1.0) -> float:
    """log P(class) plus how usual the piece's shape is for that class, for the best class.

    Probabilities calibrated with a temperature T are first taken back to the network's own
    (p ** T, renormalised): calibration is for what the user reads, and sharpening them made
    two touching digits read as one confident digit win more often.
    """
    if temperature != 1.0:
        p = scale(np.asarray(p)[None], 1.0 / temperature)[0]
    logp = np.log(np.maximum(p, 1e-6))
    if ASPECT_WEIGHT:
        z = (np.log(max(w, 1.0) / max(h, 1.0)) - ASPECT_LOG) / (ASPECT_SLACK * ASPECT_SPREAD)
        logp = logp - ASPECT_WEIGHT * 0.5 * np.maximum(np.abs(z) - 1.0, 0.0) ** 2
    return float(logp.max())


def _sliver_cost(w: float, ref: float) -> float:
    a = w / ref
    return 0.5 * ((0.45 - a) / 0.1) ** 2 if a < 0.45 else 0.0


def _slices(g: _Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Cut a group at its ink minima into slices of about SLICE * ref, or keep it whole."""
    if g.w <= 0.6 * ref:
        return _whole(g, gmask)
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    k = max(2, int(round(g.w / (SLICE * ref))))
    return _pieces_between(g, gmask, _seams(gmask, _cuts(prof, k), g.w / k))


SEAM_STEP_COST = 0.05  # per column moved sideways in one row: seams lean only to avoid ink
SEAM_ROWS = 48  # paths are found on the group shrunk to this many rows (speed)
SEAM_REACH = 0.3  # a path strays at most this many slice widths from its cut's column


def _seams(gmask: np.ndarray, cuts: list[int], step: float) -> list[np.ndarray]:
    """Each inner cut as a top-to-bottom path (one column per row) crossing the least ink.

    Neighbouring digits lean into each other's columns in slanted or overlapping writing, so
    a straight vertical cut slices one of them; a path can weave between them, and cross a
    touching stroke where it is thinnest. Each path stays within 0.3 slice of its cut's
    column and moves at most one column per row; paths are kept from crossing. All paths of
    a group are found together, on the mask shrunk to at most SEAM_ROWS rows.
    """
    h, w = gmask.shape
    inner = cuts[1:-1]
    if not inner:
        return [np.zeros(h, np.int32), np.full(h, w, np.int32)]
    f = min(1.0, SEAM_ROWS / h)
    small = gmask.astype(np.float32)
    if f < 1.0:
        small = cv2.resize(small, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    hs, ws = small.shape
    half = max(1, int(SEAM_REACH * step * f))
    starts = np.array([round(c * f) - half for c in inner])
    cols = starts[:, None] + np.arange(2 * half + 1)[None, :]  # (seams, window)
    inside = (cols >= 1) & (cols < ws - 1)
    # Outside the group: far dearer than ink, but finite, so that every window has a path.
    cost = np.where(inside[:, None, :], small[:, np.clip(cols, 0, ws - 1)].transpose(1, 0, 2), 1e6)
    cost = cost + 1e-3 * np.abs(np.arange(2 * half + 1) - half)  # ties: the straightest path
    offsets = _cheapest_paths(cost.astype(np.float32))  # (seams, rows), columns in the window
    rows = np.minimum((np.arange(h) * f).astype(np.int64), hs - 1)
    bounds = [np.zeros(h, np.int32)]
    for k in range(len(inner)):
        path = np.rint((starts[k] + offsets[k, rows] + 0.5) / f - 0.5).astype(np.int32)
        bounds.append(np.maximum(np.clip(path, 1, w - 1), bounds[-1]))
    bounds.append(np.full(h, w, np.int32))
    return bounds


def _cheapest_paths(cost: np.ndarray) -> np.ndarray:
    """For each (rows, cols) cost plane, the column per row of its cheapest 8-connected path."""
    n, h, w = cost.shape
    acc = cost[:, 0].copy()
    back = np.zeros((n, h, w), np.int8)
    pad = np.full((n, 1), np.inf, np.float32)
    for y in range(1, h):
        left = np.concatenate((pad, acc[:, :-1]), axis=1) + SEAM_STEP_COST
        right = np.concatenate((acc[:, 1:], pad), axis=1) + SEAM_STEP_COST
        three = np.stack((left, acc, right))
        choice = np.argmin(three, axis=0)
        acc = np.take_along_axis(three, choice[None], axis=0)[0] + cost[:, y]
        back[:, y] = choice - 1
    path = np.empty((n, h), np.int64)
    path[:, -1] = np.argmin(acc, axis=1)
    idx = np.arange(n)
    for y in range(h - 1, 0, -1):
        path[:, y - 1] = path[:, y] + back[idx, y, path[:, y]]
    return path


def _pieces_between(g: _Group, gmask: np.ndarray, bounds: list[np.ndarray]) -> list[Piece]:
    """The group's ink between consecutive paths, as pieces (a pixel on a path goes right)."""
    cols = np.arange(gmask.shape[1])[None, :]
    out = []
    for left, right in zip(bounds[:-1], bounds[1:]):
        part = gmask & (cols >= left[:, None]) & (cols < right[:, None])
        bb = _bbox(part)
        if bb is None:
            continue
        x, y, w, h = bb
        out.append(Piece((g.x0 + x, g.y0 + y, w, h), part[y : y + h, x : x + w]))
    return out


def _union(pieces: list[Piece]) -> Piece:
    box = _union_box(pieces)
    x0, y0 = box[0], box[1]
    m = np.zeros((box[3], box[2]), bool)
    for p in pieces:
        x, y, w, h = p.box
        m[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= p.mask
    return Piece(box, m)


def _read_row(
    groups: list[_Group],
    masks: list[np.ndarray],
    ref: float,
    ink: np.ndarray,
    scorer: Scorer,
    temperature: float = 1.0,
    checker: Checker | None = None,
) -> list[Piece]:
    slices: list[Piece] = []
    starts_group: list[bool] = []
    group_h: list[int] = []  # the height of each slice's group
    for g, m in zip(groups, masks):
        parts = _slices(g, m, ref)
        slices.extend(parts)
        starts_group.extend([True] + [False] * (len(parts) - 1))
        group_h.extend([g.h] * len(parts))
    n = len(slices)
    # Candidate digits: runs of consecutive slices, not bridging a clear gap between groups.
    cands: list[tuple[int, int, tuple[int, int, int, int]]] = []
    for i in range(n):
        right = slices[i].box[0] + slices[i].box[2]
        for j in range(i, min(n, i + MAX_SLICES)):
            if j > i:
                gap = slices[j].box[0] - right
                if starts_group[j] and gap > 0.15 * ref:
                    break
                right = max(right, slices[j].box[0] + slices[j].box[2])
            box = slices[i].box if j == i else _union_box(slices[i : j + 1])
            if box[2] > 1.8 * ref:
                break
            cands.append((i, j, box))

    def score(k: int, logp: float) -> float:
        i, j, box = cands[k]
        value = logp + _shape_prior(box[2], box[3], ref)
        if not starts_group[i]:
            # Cutting through ink needs evidence: a cost per cut, more for a sliver of a digit.
            value -= CUT_COST + _sliver_cost(box[2], ref)
        if j + 1 < n and not starts_group[j + 1]:
            value -= _sliver_cost(box[2], ref)
        return value

    pieces: dict[int, Piece] = {}
    logps: list[float | None] = [None] * len(cands)

    def piece(k: int) -> Piece:
        if k not in pieces:
            i, j, _ = cands[k]
            pieces[k] = slices[i] if j == i else _union(slices[i : j + 1])
        return pieces[k]

    def ask(ks: list[int]) -> None:
        if not ks:
            return
        for k in ks:
            _prepare(ink, piece(k))
        batch = np.stack([piece(k).normalized[2] for k in ks]).astype(np.float32)
        probs = np.asarray(scorer(batch))
        one = _one_digit_logp(checker, batch)
        for n_k, (k, p) in enumerate(zip(ks, probs)):
            piece(k).probabilities = p
            logps[k] = _reading_score(p, cands[k][2][2], cands[k][2][3], temperature) + one[n_k]

    # Pieces lower than FLAT of the row are not digits: alone they were dropped as marks
    # (`segment_pieces`); cut off a group (a dash touching the last digit, a 1's flag or a 5's
    # bar split from its digit) one may be left out for the price of the cut that frees it.
    # Only pieces low within their own group too: the rest of the group still holds a digit.
    marks = {
        k: -CUT_COST * (not starts_group[i])
        for k, (i, _, box) in enumerate(cands)
        if box[3] < FLAT * min(ref, group_h[i])
    }

    def best_path() -> list[int]:
        # Unread candidates count with the best confidence there is (log 1 = 0): an upper bound.
        # A mark left out is on the path as -1 - k.
        best = np.full(n + 1, -np.inf)
        best[0] = 0.0
        back: list[tuple[int, int] | None] = [None] * (n + 1)
        by_end: dict[int, list[tuple[int, int, float]]] = {}
        for k, (i, j, _) in enumerate(cands):
            by_end.setdefault(j, []).append((i, k, score(k, 0.0 if logps[k] is None else logps[k])))
            if k in marks:
                by_end[j].append((i, -1 - k, marks[k]))
        for j in range(n):
            for i, k, value in by_end.get(j, []):
                if best[i] + value > best[j + 1]:
                    best[j + 1] = best[i] + value
                    back[j + 1] = (i, k)
        path: list[int] = []
        j = n
        while j > 0 and back[j] is not None:
            i, k = back[j]
            path.append(k)
            j = i
        return path[::-1]

    # First read the candidates that cut no group (usually the digits themselves). If the best
    # path, with every unread candidate granted full confidence, still uses only read ones,
    # no cut can beat it and the model is not asked about the cuts at all.
    ask([k for k, (i, j, _) in enumerate(cands) if starts_group[i] and (j + 1 == n or starts_group[j + 1])])
    path = best_path()
    if any(k >= 0 and logps[k] is None for k in path):
        ask([k for k in range(len(cands)) if logps[k] is None])
        path = best_path()
    return [piece(k) for k in path if k >= 0]


def _one_digit_logp(checker: Checker | None, batch: np.ndarray) -> np.ndarray:
    """ONE_DIGIT_WEIGHT * log P(one digit) per image (zeros without a checker).

    The digit model reads two touching digits, or a digit cut in half, as some digit, often
    confidently; the checker's doubt is what lets the cut (or the whole) win instead.
    """
    if checker is None or not ONE_DIGIT_WEIGHT:
        return np.zeros(len(batch))
    p = np.asarray(checker(batch), dtype=np.float64).reshape(len(batch))
    return ONE_DIGIT_WEIGHT * np.log(np.maximum(p, 1e-4))


def _union_box(pieces: list[Piece]) -> tuple[int, int, int, int]:
    x0 = min(p.box[0] for p in pieces)
    y0 = min(p.box[1] for p in pieces)
    x1 = max(p.box[0] + p.box[2] for p in pieces)
    y1 = max(p.box[1] + p.box[3] for p in pieces)
    return (x0, y0, x1 - x0, y1 - y0)


def _prepare(ink: np.ndarray, piece: Piece) -> None:
    """Cut out a piece's ink and normalise it, once."""
    if piece.normalized is None:
        piece.ink = _piece_ink_at(ink, piece)
        piece.normalized = _normalize(piece.ink[2])


def _same_digit(a: _Group, b: _Group, ref: float) -> bool:
    """Two pieces of one digit: strongly overlapping in x, or a stem just beside an open 4."""
    union = a.merged(b)
    overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    if overlap >= 0.5 * min(a.w, b.w) and union.w <= 1.1 * max(ref, union.h):
        return True
    # The stroke of a 4 drawn after its open "L", not quite touching it: a tiny gap, a digit-
    # shaped union, and (unlike "11") pieces that end at clearly different heights.
    gap = -overlap
    narrow = a if a.w < b.w else b
    return (
        gap <= max(2.0, 0.1 * ref)
        and union.w <= 0.85 * union.h
        and narrow.w <= 0.4 * narrow.h
        and max(abs(a.y1 - b.y1), abs(a.y0 - b.y0)) >= 0.2 * union.h
    )


def _cuts(prof: np.ndarray, pieces: int) -> list[int]:
    """Column indices splitting a profile into `pieces` parts at its minima near even spacing."""
    w = len(prof)
    cuts = [0]
    step = w / pieces
    for k in range(1, pieces):
        centre = k * step
        lo = int(max(cuts[-1] + 0.4 * step, centre - 0.35 * step))
        hi = int(min(w - 0.4 * step, centre + 0.35 * step))
        if hi <= lo:
            continue
        seg = prof[lo:hi]
        # Least ink, and among near-ties the column closest to the expected position.
        cost = seg + 0.05 * max(seg.max(), 1.0) * np.abs(np.arange(lo, hi) - centre) / max(step, 1)
        cuts.append(lo + int(np.argmin(cost)))
    cuts.append(w)
    return cuts


def _whole(g: _Group, gmask: np.ndarray) -> list[Piece]:
    """The group as one piece."""
    h, w = gmask.shape
    return _pieces_between(g, gmask, [np.zeros(h, np.int32), np.full(h, w, np.int32)])


def _split_heuristic(g: _Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Without a model: split a group only when it is clearly too wide for one digit."""
    height = max(float(g.h), ref)
    if g.w <= 1.15 * height:
        return _whole(g, gmask)
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    k = max(2, int(round(g.w / (0.7 * height))))
    return _pieces_between(g, gmask, _seams(gmask, _cuts(prof, k), g.w / k))


def _piece_image(ink: np.ndarray, piece: Piece) -> np.ndarray:
    return normalize_digit(_piece_ink(ink, piece))


def _piece_ink(ink: np.ndarray, piece: Piece) -> np.ndarray:
    """The ink of one piece (its pixels plus their anti-aliased edge), cut out of the image."""
    return _piece_ink_at(ink, piece)[2]


def _piece_ink_at(ink: np.ndarray, piece: Piece) -> tuple[int, int, np.ndarray]:
    """`_piece_ink` and where its top-left corner lies in the image: (x0, y0, ink)."""
    x, y, w, h = piece.box
    pad = 2  # the reach of `_support`
    H, W = ink.shape
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(W, x + w + pad), min(H, y + h + pad)
    local = np.zeros((y1 - y0, x1 - x0), bool)
    local[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = piece.mask
    return x0, y0, np.where(_support(local), ink[y0:y1, x0:x1], 0).astype(ink.dtype)


def preprocess_multi(
    image: np.ndarray,
    scorer: Scorer | None = None,
    fast: bool | None = None,
    temperature: float = 1.0,
    checker: Checker | None = None,
) -> list[DigitCrop]:
    """Grayscale or ink image holding one or more digits -> one DigitCrop per digit, left to right.

    `scorer` (optional): a function from (N, 28, 28) images to (N, 10) probabilities, used to
    decide how to split groups that may hold several touching digits. Its answers for the
    digits kept come back in `DigitCrop.probabilities`. `temperature`: the one the scorer's
    probabilities were calibrated with (`Predictor.temperature`); segmentation weighs the
    network's own evidence, on the scale its settings were chosen for. `fast`: as in `to_ink`.
    `checker` (optional, with a scorer): P(one digit) of the same images, so that a piece the
    model reads confidently but that is two touching digits (or half of one) loses to the cut.
    """
    gray = _as_gray_u8(image)
    if FAST if fast is None else fast:
        crops = _clean_one_piece_row(gray, scorer, temperature)
        if crops is not _UNSURE:
            return crops
    # `to_ink_detail` already blanked the ink outside the support of its mask.
    ink, mask, info = to_ink_detail(gray, multi=True, fast=fast)
    if not mask.any():
        return []
    out = []
    for piece in segment_pieces(mask, ink, scorer, info.components, temperature, checker):
        if not is_digit_like(piece.mask):  # the same as on the whole image: it is all there is
            continue
        # Its pixels and their grey edge, in the whole image.
        x0, y0, local = piece.ink if piece.ink is not None else _piece_ink_at(ink, piece)
        local_bb = _bbox(local)
        if local_bb is None:
            continue
        own = np.zeros_like(ink)
        own[y0 : y0 + local.shape[0], x0 : x0 + local.shape[1]] = local
        x, y, w, h = piece.box
        m = np.zeros_like(mask)
        m[y : y + h, x : x + w] = piece.mask
        bb = (x0 + local_bb[0], y0 + local_bb[1], local_bb[2], local_bb[3])
        st = _stages(gray, own, m, info, piece.normalized, bb)
        if st is not None:
            scored = piece.probabilities is not None
            out.append(DigitCrop(piece.box, st.final, st, piece.probabilities, scorer if scored else None))
    return out


def _clean_one_piece_row(
    gray: np.ndarray, scorer: Scorer | None, temperature: float = 1.0
) -> list[DigitCrop] | object:
    """`preprocess_multi` of a clean drawing whose ink is one connected piece, or `_UNSURE`.

    What the general path makes of it, without its machinery: one piece is one group, which
    segmentation keeps whole when it is narrow (a single slice; without a scorer, up to
    1.15 x its height); otherwise the piece is read whole first, and kept when its score beats
    every cut (each cut costs CUT_COST and nothing scores above 0, so a whole reading scoring
    more than -CUT_COST wins the dynamic programme). Anything else goes the general way.
    """
    box = _clean_ink_box(gray)
    if box is None:
        return _UNSURE
    if box[2] == 0:
        return []
    thresh = float(cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])
    if thresh < 1:
        return _UNSURE
    x, y, bw, bh = box
    crop = gray[y : y + bh, x : x + bw]
    weak = cv2.threshold(crop, max(0.6 * thresh, 1.0), 1, cv2.THRESH_BINARY)[1]
    if cv2.connectedComponents(weak, connectivity=8, ltype=cv2.CV_16U)[0] != 2:
        return _UNSURE  # several pieces (or specks): segmentation decides
    # One piece: holding the white core, it passes the hysteresis, and no speck is dropped.
    mx, my, mw, mh = cv2.boundingRect(weak)
    piece_box = (x + mx, y + my, mw, mh)
    h, w = gray.shape
    for horizontal in (True, False):
        k = _line_kernel(horizontal, w if horizontal else h, mh, True)
        if k is not None and not _too_short(piece_box, gray.shape, horizontal, k):
            return _UNSURE
    if not is_digit_like(weak.view(bool)):
        return []
    ref = float(mh)  # one group: the row's height is its own
    if scorer is None:
        if mw > 1.15 * ref:
            return _UNSURE
    elif mw > 0.6 * ref and (int(round(mw / (SLICE * ref))) > MAX_SLICES or mw > 1.8 * ref):
        return _UNSURE  # too wide to be read whole: segmentation cuts it
    ink_crop = cv2.bitwise_and(crop, crop, mask=cv2.dilate(weak, _DISC5))  # `_support`
    ix, iy, iw, ih = cv2.boundingRect(ink_crop)
    cropped, box20, final = _normalize(ink_crop, bb=(ix, iy, iw, ih))
    probabilities = None
    if scorer is not None:
        probabilities = np.asarray(scorer(final[None].astype(np.float32)))[0]
        score = _reading_score(probabilities, mw, mh, temperature) + _shape_prior(mw, mh, ref)
        if mw > 0.6 * ref and score <= -CUT_COST:
            return _UNSURE  # a cut might read better
    ink = np.zeros_like(gray)
    ink[y : y + bh, x : x + bw] = ink_crop
    mask = np.zeros(gray.shape, bool)
    mask[y : y + bh, x : x + bw] = weak.view(bool)
    st = Stages(gray, ink, mask, cropped, box20, final, (x + ix, y + iy, iw, ih), False, "clean")
    return [DigitCrop(piece_box, final, st, probabilities, scorer)]
