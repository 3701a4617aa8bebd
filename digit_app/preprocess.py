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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

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
MIN_ELONGATION = 2.2  # a digit is a stroke: its extent is several stroke widths, a dot is not
# MNIST's stroke width relative to the longer side of the digit (measured on the training set
# with `stroke_width`): median 0.12, 5th-95th percentile 0.08-0.185. Strokes bolder than
# STROKE_RANGE[1] (a fat canvas brush on a small drawing, a marker) are thinned to the median.
# Hairlines are NOT thickened (lower bound 0): area-averaged downscaling already turns a thin
# pen line into a 1-2 px grey stroke, and thickening measured worse on real scans (-0.7 point).
STROKE_TARGET = 0.12
STROKE_RANGE = (0.0, 0.15)


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
    method: str = "otsu"  # how the background was removed: "otsu" or "adaptive"


@dataclass
class DigitCrop:
    """One digit found in an image: where it is, and its 28x28 model input."""

    box: tuple[int, int, int, int]  # (x, y, w, h) in the input image
    image: np.ndarray  # (28, 28) float32 0..1
    stages: Stages


@dataclass
class InkInfo:
    """What `to_ink` decided, for display and debugging."""

    inverted: bool
    method: str
    background: float  # background level of the input (0..255)
    contrast: float  # ink level minus background, 0 when no ink was found
    notes: list[str] = field(default_factory=list)


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
        return a
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


def to_ink(gray: np.ndarray, multi: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale of either polarity -> (ink uint8 white-on-black, mask bool) for the whole image.

    `multi`: the image holds a row of digits (lines are judged against the row, and pieces at
    the border are kept, since digits at both ends of a row often touch it).
    """
    ink, mask, _ = to_ink_detail(gray, multi)
    return ink, mask


def to_ink_detail(gray: np.ndarray, multi: bool = False) -> tuple[np.ndarray, np.ndarray, InkInfo]:
    """`to_ink` plus what was decided (polarity, method, contrast)."""
    gray = _as_gray_u8(gray)
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


# =============================================================================================
# Cleaning: specks, ruled/grid lines, slivers of neighbouring cells
# =============================================================================================


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return n, labels, stats


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
    rows_with_ink = np.flatnonzero(mask.any(axis=1))
    ink_height = rows_with_ink[-1] - rows_with_ink[0] + 1 if len(rows_with_ink) else h
    for horizontal in (True, False):
        length = w if horizontal else h
        other = h if horizontal else w
        if length < 24:
            continue
        if multi and horizontal:
            # In a row of digits, a horizontal line longer than half the row and much longer
            # than the digits are tall is never part of a digit.
            k = max(12, int(round(max(0.5 * length, 1.5 * ink_height))))
        else:
            # A vertical one must span the whole height (a frame), or it may well be a 1.
            k = max(12, int(round(0.9 * length)))
        if k > length:
            continue
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
    mask = remove_lines(mask, notes, multi)
    if not multi:
        mask = remove_border_slivers(mask, notes)
    mask = remove_specks(mask, notes)
    return mask


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: area over half the perimeter (holes included).

    A stroke of length L and width w has area wL and a perimeter of about 2L, so 2A/P is its
    width whatever the digit's shape, and robust where strokes cross or curve.
    """
    m8 = np.pad(np.asarray(mask).astype(np.uint8), 1)
    area = int(m8.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(m8, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return float(2.0 * area / perimeter) if perimeter > 0 else 1.0


def is_digit_like(mask: np.ndarray) -> bool:
    """False for nothing, a speck or a dot: a digit is a stroke several widths long."""
    ys, xs = np.nonzero(mask)
    if len(ys) < MIN_SPECK_AREA * 2:
        return False
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    if side < MIN_DIGIT_SIDE:
        return False
    return side >= MIN_ELONGATION * max(stroke_width(mask), 1.0)


# =============================================================================================
# 2. One digit -> 28x28, MNIST style
# =============================================================================================


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass in pixel-index coordinates (pixel i spans i-0.5..i+0.5)."""
    a = np.asarray(img, dtype=np.float64)
    total = a.sum()
    if total <= 0:
        return (a.shape[1] - 1) / 2.0, (a.shape[0] - 1) / 2.0
    ys, xs = np.indices(a.shape)
    return float((a * xs).sum() / total), float((a * ys).sum() / total)


def _bbox(a: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(a.any(axis=1))
    xs = np.flatnonzero(a.any(axis=0))
    if len(ys) == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def scale_to_box(cropped: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so that the longer side is `box` px, keeping the aspect ratio; float32 0..1, peak 1."""
    c = np.asarray(cropped, dtype=np.float32)
    if c.max() > 1.0:
        c = c / 255.0
    h, w = c.shape
    s = box / max(h, w)
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    if s < 1.0:
        out = cv2.resize(c, size, interpolation=cv2.INTER_AREA)
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
    return np.clip(out / peak, 0.0, 1.0) if peak > 0 else out


def center_in_field(box: np.ndarray, size: int = SIZE, subpixel: bool | None = None) -> np.ndarray:
    """Paste into size x size so that the centre of mass lands on MNIST's centre."""
    subpixel = SUBPIXEL if subpixel is None else subpixel
    cx, cy = center_of_mass(box)
    c = float(CENTER) * size / SIZE
    tx, ty = c - cx, c - cy
    if not subpixel:
        tx, ty = float(round(tx)), float(round(ty))
    m = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]], np.float32)
    out = cv2.warpAffine(box.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(out, 0.0, 1.0)


def normalize_digit(ink: np.ndarray, stroke: bool = True) -> np.ndarray:
    """White-on-black ink of one digit (any size) -> (28, 28) float32 0..1, MNIST style.

    `stroke`: bring a stroke much thinner or bolder than MNIST's to MNIST's width first.
    """
    return _normalize(ink, stroke)[2]


def _crop(a: np.ndarray) -> np.ndarray:
    bb = _bbox(a > 0)
    if bb is None:
        raise ValueError("no ink to normalise")
    x, y, w, h = bb
    return a[y : y + h, x : x + w]


def adjust_stroke(cropped: np.ndarray) -> np.ndarray:
    """Bring a stroke outside STROKE_RANGE (relative to the digit's size) to MNIST's median width.

    Grey-level dilation or erosion with a disc, so anti-aliased edges stay smooth; erosion
    never takes more than half a stroke, so thin parts of a bold digit do not vanish.
    With the shipped range only bold strokes are changed (see STROKE_RANGE).
    """
    a = np.asarray(cropped, dtype=np.float32)
    peak = float(a.max())
    if peak <= 0:
        return cropped
    mask = a >= 0.5 * peak
    side = max(a.shape)
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
        if (out >= 0.5 * peak).sum() < 0.25 * mask.sum():
            return cropped
    out = out.astype(cropped.dtype) if cropped.dtype == np.uint8 else out
    return _crop(out)


def _normalize(ink: np.ndarray, stroke: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cropped = _crop(np.asarray(ink))
    if stroke:
        cropped = adjust_stroke(cropped)
    box = scale_to_box(cropped)
    return cropped, box, center_in_field(box)


# =============================================================================================
# Single digit
# =============================================================================================


def preprocess_single(image: np.ndarray) -> Stages | None:
    """Grayscale or ink image holding one digit -> its Stages, or None when there is no digit."""
    gray = _as_gray_u8(image)
    ink, mask, info = to_ink_detail(gray)
    if not is_digit_like(mask):
        return None
    ink = np.where(_support(mask), ink, 0).astype(np.uint8)
    return _stages(gray, ink, mask, info)


def _support(mask: np.ndarray) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)


def _stages(gray: np.ndarray, ink: np.ndarray, mask: np.ndarray, info: InkInfo) -> Stages | None:
    bb = _bbox(ink > 0)
    if bb is None:
        return None
    cropped, box, final = _normalize(ink)
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


@dataclass
class Piece:
    """One digit's place in the image: its box and which ink pixels belong to it."""

    box: tuple[int, int, int, int]  # (x, y, w, h)
    mask: np.ndarray  # (h, w) bool, the pixels of the box that belong to this digit


def segment(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the digits in a cleaned ink mask, left to right."""
    return [p.box for p in segment_pieces(mask)]


def segment_pieces(
    mask: np.ndarray, ink: np.ndarray | None = None, scorer: Scorer | None = None
) -> list[Piece]:
    """The digits of a cleaned ink mask, left to right.

    Connected components; dots and specks dropped; pieces of one digit merged; leftovers
    flatter than a digit (dashes, remains of an underline) dropped; groups too wide for one
    digit split at the columns with the least ink. With a `scorer` (the model), a group that
    may hold several digits is split the way the model reads most confidently.
    """
    mask = np.asarray(mask).astype(bool)
    n, labels, stats = _components(mask)
    groups = [
        _Group(int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3]), [i], int(s[4]))
        for i, s in enumerate(stats)
        if i > 0
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
    # Leftovers flatter than a digit (dashes, underlines' remains).
    groups = [g for g in groups if g.h >= 0.45 * ref]
    groups.sort(key=lambda g: g.x0)
    masks = [np.isin(labels[g.y0 : g.y1, g.x0 : g.x1], g.labels) for g in groups]
    if scorer is not None and ink is not None:
        pieces = _read_row(groups, masks, ref, ink, scorer)
    else:
        pieces = [p for g, m in zip(groups, masks) for p in _split_heuristic(g, m, ref)]
    pieces.sort(key=lambda p: p.box[0] + p.box[2] / 2.0)
    return pieces


# --- segmentation by recognition ------------------------------------------------------------
# Over-segment (every group cut at the ink minima into slices about a third of a digit
# wide), then choose how to join consecutive slices into digits by dynamic programming: the
# best path maximises the sum over its digits of log(model confidence) + log(shape prior).
# The prior says what a digit looks like next to its neighbours: about 0.75 of the row's
# height wide (a 1 narrower, rarely more than 1.2), and not much shorter than the row.
SLICE = 0.3  # slice width, relative to the row height
MAX_SLICES = 5  # a digit spans at most this many slices
PRIOR_WEIGHT = 0.5
CUT_COST = 1.0  # in log-confidence: a cut must make the digits that much more certain


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


def _sliver_cost(w: float, ref: float) -> float:
    a = w / ref
    return 0.5 * ((0.45 - a) / 0.1) ** 2 if a < 0.45 else 0.0


def _slices(g: _Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Cut a group at its ink minima into slices of about SLICE * ref, or keep it whole."""
    if g.w <= 0.6 * ref:
        return _pieces_at(g, gmask, [0, g.w])
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    k = max(2, int(round(g.w / (SLICE * ref))))
    return _pieces_at(g, gmask, _cuts(prof, k))


def _union(pieces: list[Piece]) -> Piece:
    x0 = min(p.box[0] for p in pieces)
    y0 = min(p.box[1] for p in pieces)
    x1 = max(p.box[0] + p.box[2] for p in pieces)
    y1 = max(p.box[1] + p.box[3] for p in pieces)
    m = np.zeros((y1 - y0, x1 - x0), bool)
    for p in pieces:
        x, y, w, h = p.box
        m[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= p.mask
    return Piece((x0, y0, x1 - x0, y1 - y0), m)


def _read_row(
    groups: list[_Group], masks: list[np.ndarray], ref: float, ink: np.ndarray, scorer: Scorer
) -> list[Piece]:
    slices: list[Piece] = []
    starts_group: list[bool] = []
    for g, m in zip(groups, masks):
        parts = _slices(g, m, ref)
        slices.extend(parts)
        starts_group.extend([True] + [False] * (len(parts) - 1))
    n = len(slices)
    # Candidate digits: runs of consecutive slices, not bridging a clear gap between groups.
    cands: list[tuple[int, int, Piece]] = []
    for i in range(n):
        right = slices[i].box[0] + slices[i].box[2]
        for j in range(i, min(n, i + MAX_SLICES)):
            if j > i:
                gap = slices[j].box[0] - right
                if starts_group[j] and gap > 0.15 * ref:
                    break
                right = max(right, slices[j].box[0] + slices[j].box[2])
            piece = slices[i] if j == i else _union(slices[i : j + 1])
            if piece.box[2] > 1.8 * ref:
                break
            cands.append((i, j, piece))
    probs = np.asarray(scorer(np.stack([_piece_image(ink, c[2]) for c in cands]).astype(np.float32)))
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back: list[tuple[int, Piece] | None] = [None] * (n + 1)
    by_end: dict[int, list[tuple[int, Piece, float]]] = {}
    for (i, j, piece), p in zip(cands, probs):
        score = float(np.log(max(float(p.max()), 1e-6))) + _shape_prior(piece.box[2], piece.box[3], ref)
        if not starts_group[i]:
            # Cutting through ink needs evidence: a cost per cut, more for a sliver of a digit.
            score -= CUT_COST + _sliver_cost(piece.box[2], ref)
        if j + 1 < n and not starts_group[j + 1]:
            score -= _sliver_cost(piece.box[2], ref)
        by_end.setdefault(j, []).append((i, piece, score))
    for j in range(n):
        for i, piece, score in by_end.get(j, []):
            if best[i] + score > best[j + 1]:
                best[j + 1] = best[i] + score
                back[j + 1] = (i, piece)
    out: list[Piece] = []
    j = n
    while j > 0 and back[j] is not None:
        i, piece = back[j]
        out.append(piece)
        j = i
    return out[::-1]


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


def _pieces_at(g: _Group, gmask: np.ndarray, cuts: list[int]) -> list[Piece]:
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        part = np.zeros_like(gmask)
        part[:, a:b] = gmask[:, a:b]
        bb = _bbox(part)
        if bb is None:
            continue
        x, y, w, h = bb
        out.append(Piece((g.x0 + x, g.y0 + y, w, h), part[y : y + h, x : x + w]))
    return out


def _split_heuristic(g: _Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Without a model: split a group only when it is clearly too wide for one digit."""
    height = max(float(g.h), ref)
    if g.w <= 1.15 * height:
        return _pieces_at(g, gmask, [0, g.w])
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    return _pieces_at(g, gmask, _cuts(prof, max(2, int(round(g.w / (0.7 * height))))))


def _piece_image(ink: np.ndarray, piece: Piece) -> np.ndarray:
    return normalize_digit(_piece_ink(ink, piece))


def _piece_ink(ink: np.ndarray, piece: Piece) -> np.ndarray:
    """The ink of one piece (its pixels plus their anti-aliased edge), cut out of the image."""
    x, y, w, h = piece.box
    pad = 2
    H, W = ink.shape
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(W, x + w + pad), min(H, y + h + pad)
    local = np.zeros((y1 - y0, x1 - x0), bool)
    local[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = piece.mask
    return np.where(_support(local), ink[y0:y1, x0:x1], 0).astype(ink.dtype)


def preprocess_multi(image: np.ndarray, scorer: Scorer | None = None) -> list[DigitCrop]:
    """Grayscale or ink image holding one or more digits -> one DigitCrop per digit, left to right.

    `scorer` (optional): a function from (N, 28, 28) images to (N, 10) probabilities, used to
    decide how to split groups that may hold several touching digits.
    """
    gray = _as_gray_u8(image)
    ink, mask, info = to_ink_detail(gray, multi=True)
    if not mask.any():
        return []
    ink = np.where(_support(mask), ink, 0).astype(np.uint8)
    out = []
    for piece in segment_pieces(mask, ink, scorer):
        x, y, w, h = piece.box
        m = np.zeros_like(mask)
        m[y : y + h, x : x + w] = piece.mask
        if not is_digit_like(m):
            continue
        own = np.where(_support(m), ink, 0).astype(np.uint8)  # its pixels and their grey edge
        st = _stages(gray, own, m, info)
        if st is not None:
            out.append(DigitCrop(piece.box, st.final, st))
    return out
