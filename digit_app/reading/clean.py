"""Cleaning: an ink mask without what is not handwriting.

In: a bool mask of the ink pixels (from `ink`), and whether the image holds a row of digits
(`multi`). Out: the same mask with specks (dust, paper texture, JPEG noise), ruled or grid
lines and slivers of neighbouring cells cut off at the border removed, with notes saying what
went; and `is_digit_like`, whether what is left is a stroke rather than a dot.
Why: a scan of a form's cell holds more than the digit, and the model has only ever seen the
digit (MNIST). The thresholds are relative to the image or to the ink wherever possible, so
that they hold at any resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.measure import as_u8_mask, label_components, stroke_width, stroke_width_u8

SPECK_FRACTION = 0.02  # components smaller than this share of the largest one are specks
MIN_SPECK_AREA = 3  # ... and below this many pixels always
MIN_DIGIT_SIDE = 4  # px: ink smaller than this is not a digit
MIN_ELONGATION = 2.2  # a digit is a stroke: its extent is several stroke widths, a dot is not


def clean_mask(mask: np.ndarray, notes: list[str] | None = None, multi: bool = False) -> np.ndarray:
    """Specks, lines and border slivers removed, in the order that keeps each test meaningful."""
    mask = remove_specks(mask, notes)
    cleaned = remove_lines(mask, notes, multi)
    if not multi:
        cleaned = remove_border_slivers(cleaned, notes)
    if cleaned is mask:
        return mask  # nothing else removed: a second speck pass would remove nothing either
    return remove_specks(cleaned, notes)


def remove_specks(mask: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Drop components that are tiny next to the largest one (dust, paper texture, JPEG noise)."""
    n, labels, stats = label_components(mask)
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
        k = line_kernel(horizontal, length, ink_height, multi)
        if k is None or too_short(bbox, mask.shape, horizontal, k):
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
    n, labels, stats = label_components(mask)
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


def is_digit_like(mask: np.ndarray) -> bool:
    """False for nothing, a speck or a dot: a digit is a stroke several widths long."""
    m = np.asarray(mask)
    m8 = as_u8_mask(m if m.dtype == bool else m != 0)
    area = cv2.countNonZero(m8)
    if area < MIN_SPECK_AREA * 2:
        return False
    bbox = cv2.boundingRect(m8)
    side = max(bbox[2], bbox[3])
    if side < MIN_DIGIT_SIDE:
        return False
    width = stroke_width_u8(m8, area, bbox) if m.dtype == bool else stroke_width(mask)
    return side >= MIN_ELONGATION * max(width, 1.0)


def keep_unspecked(kept: np.ndarray, areas: np.ndarray, n_pixels: int, notes: list[str] | None) -> np.ndarray:
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


def may_hold_lines(mask: np.ndarray, multi: bool) -> bool:
    """False when `remove_lines` certainly finds no line: no run of the ink is long enough."""
    m8 = mask.view(np.uint8)
    bbox = cv2.boundingRect(m8)
    if bbox[2] == 0:
        return False
    h, w = mask.shape
    for horizontal in (True, False):
        k = line_kernel(horizontal, w if horizontal else h, bbox[3], multi)
        if k is None or too_short(bbox, mask.shape, horizontal, k):
            continue
        kernel = np.ones((1, k) if horizontal else (k, 1), np.uint8)
        if cv2.countNonZero(cv2.erode(m8, kernel)):  # the opening is empty iff the erosion is
            return True
    return False


def line_kernel(horizontal: bool, length: int, ink_height: int, multi: bool) -> int | None:
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


def too_short(bbox: tuple[int, int, int, int], shape: tuple[int, int], horizontal: bool, k: int) -> bool:
    """True when no run of the ink inside `bbox` can survive an opening with a k-long kernel.

    A run must be k long, or half of that where it reaches the image border (the border
    counts as ink for the erosion).
    """
    x, y, bw, bh = bbox
    start, extent, length = (x, bw, shape[1]) if horizontal else (y, bh, shape[0])
    at_border = start == 0 or start + extent == length
    return extent < (k - k // 2 if at_border else k)
