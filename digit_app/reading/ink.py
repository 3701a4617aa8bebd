"""Ink extraction: a grayscale image of either polarity -> white ink on black, and its mask.

In: a 2-D image (uint8, or floats, 0..1 ones scaled to 0..255), dark ink on light paper or the
reverse. Out: the ink (uint8, white on black, the strokes' grey anti-aliasing kept, the rest
0), the bool mask of the ink kept, and `InkInfo` (polarity, method, contrast, notes).
Why: MNIST digits are white strokes with grey edges on pure black; a scan or a photo has
paper, uneven light and noise. The polarity comes from the background level; the background
is removed with Otsu's threshold, relative to a locally estimated background when the
lighting is uneven (gradients, shadows); faint parts of a stroke are kept where they join
dark ones (hysteresis); then `clean.clean_mask` drops specks, ruled or grid lines and slivers
of neighbouring cells.

A clean input (a canvas drawing: white strokes on an exactly black background with a blank
margin) takes a shortcut, `_clean_ink`, to the general path's result; `FAST = False` (or
`fast=False`) forces the general path.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from digit_app.reading.clean import (
    clean_mask,
    keep_unspecked,
    may_hold_lines,
    remove_lines,
    remove_specks,
)
from digit_app.reading.measure import ANALYSIS_SIDE, label_components, one_piece
from digit_app.reading.types import InkInfo

MIN_CONTRAST = 24.0  # ink must differ from the background by this much (0..255)
# The shortcut for clean inputs (see `_clean_ink`); False always takes the general path.
FAST = True


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
    gray = as_gray_u8(gray)
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


def as_gray_u8(image: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image (floats in 0..1 scaled to 0..255), or a ValueError for any other shape."""
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


def clean_ink_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
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
    ink_box = clean_ink_box(gray)
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
    if not multi and min(h, w) >= 2 * ANALYSIS_SIDE and one_piece(weak):
        # One piece: it holds the white core (seeded) and is the largest (no speck to drop).
        mask = cv2.threshold(gray, weak_level, 1, cv2.THRESH_BINARY)[1].view(bool)
    else:
        # Labelled within the ink's bounding box (nothing lies outside it), numbered as the
        # whole image would be (the same raster order), in whole-image coordinates.
        bx, by, bw, bh = cv2.boundingRect(weak)
        count, box_labels, stats = label_components(weak[by : by + bh, bx : bx + bw])
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
        kept = keep_unspecked(kept, stats[:, cv2.CC_STAT_AREA], n, info.notes)
        if kept[1:].all():
            mask = cv2.threshold(gray, weak_level, 1, cv2.THRESH_BINARY)[1].view(bool)
        else:
            mask = kept[labels]
        comps = (count, labels, stats, kept)
    if may_hold_lines(mask, multi):
        cleaned = remove_lines(mask, info.notes, multi)
        if cleaned is not mask:
            mask = remove_specks(cleaned, info.notes)
            comps = None
    # The ink: the image where the mask grown by 2 px (`measure.support`) is, worked out in the mask's
    # bounding box and 2 px around it, outside of which it is blank.
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    x0, y0, x1, y1 = max(0, x - 2), max(0, y - 2), min(w, x + bw + 2), min(h, y + bh + 2)
    ink = np.zeros((h, w), np.uint8)
    if bw:
        support = cv2.dilate(mask[y0:y1, x0:x1].view(np.uint8), np.ones((5, 5), np.uint8))  # = 2 x 3x3
        ink[y0:y1, x0:x1] = cv2.bitwise_and(gray[y0:y1, x0:x1], gray[y0:y1, x0:x1], mask=support)
    info.components = comps
    return ink, mask, info


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


def _odd(n: float) -> int:
    """n rounded to a kernel size median filters take: odd (an even one plus 1), at least 3."""
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1
