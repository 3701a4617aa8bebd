"""The reading path from an image to the model's 28x28 inputs: the stages put in order.

In: a grayscale (or ink) image of any size and polarity. Out: the `Stages` of the one digit
it holds (`preprocess_single`), or a `DigitCrop` per digit, left to right (`preprocess_multi`).
Why one module on top: here the stages are chained (`ink.to_ink_detail`, which cleans; then
`normalize` for one digit, or `segment` and `normalize` for each digit of a row), so that
every stage below imports only lower ones. Everything is plain numpy/OpenCV and keeps the
intermediate images (`Stages`) so the UI can show what the model sees.

Clean inputs take a shortcut through the same functions: a canvas drawing (white strokes on
an exactly black background with a blank margin) needs no polarity or background search, no
percentiles, no uneven-lighting estimate and no border cleaning, so `to_ink` only thresholds
it and checks its pieces (`ink._clean_ink`); one drawing in one piece does without even the
threshold, and its stroke is measured on a half-size copy (`_clean_single`). The result is the
general path's, as the tests check, with one exception: the one-digit checker is not asked on
the one-piece shortcut (see `by_recognition.ONE_DIGIT_WEIGHT`), so with a checker the general
path may cut a piece the shortcut keeps whole. `FAST = False` in `ink.py` (or `fast=False`)
forces the general path.
"""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.by_recognition import CUT_COST, MAX_SLICES, piece_ink_at, reading_score, shape_prior
from digit_app.reading.clean import (
    MIN_DIGIT_SIDE,
    MIN_ELONGATION,
    MIN_SPECK_AREA,
    is_digit_like,
    line_kernel,
    too_short,
)
from digit_app.reading.cuts import SLICE
from digit_app.reading.ink import FAST, as_gray_u8, clean_ink_box, to_ink_detail
from digit_app.reading.measure import HALF_SIZE_ERROR, bounding_box, halved, one_piece, stroke_width_u8
from digit_app.reading.normalize import (
    STROKE_RANGE,
    adjust_stroke,
    center_in_field,
    normalize_steps,
    scale_to_box,
)
from digit_app.reading.segment import segment_pieces
from digit_app.reading.types import Checker, DigitCrop, InkInfo, Scorer, Stages

_UNSURE = object()  # `_clean_single` leaves the image to the general path
_DISC5 = np.ones((5, 5), np.uint8)  # growing by it is `measure.support`'s 2 px
# Pixels brighter than this are in the mask whatever Otsu's threshold (at most 254) is.
_ALWAYS_INK = int(0.6 * 254)
# The mask shown for a clean drawing: 0.6 x a threshold midway between black and white, what
# the general path's hysteresis gives for a canvas (whose Otsu threshold is about there).
_CLEAN_MASK_LEVEL = int(0.6 * 128)
# The elongation test of a clean drawing is trusted when this far above its limit (the mask at
# half the peak, used here, and the general path's measure within 11 % of each other on all
# 22,000 pendigits drawings); nearer, the general path decides.
_SURE_ELONGATION = 1.25 * MIN_ELONGATION


def preprocess_single(image: np.ndarray, fast: bool | None = None) -> Stages | None:
    """Grayscale or ink image holding one digit -> its Stages, or None when there is no digit.

    `fast`: as in `to_ink` (False forces the general path).
    """
    gray = as_gray_u8(image)
    if FAST if fast is None else fast:
        st = _clean_single(gray)
        if st is not _UNSURE:
            return st
    # `to_ink_detail` already blanked the ink outside the support of its mask.
    ink, mask, info = to_ink_detail(gray, fast=fast)
    if not is_digit_like(mask):
        return None
    return _stages(gray, ink, mask, info)


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
    gray = as_gray_u8(image)
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
        x0, y0, local = piece.ink if piece.ink is not None else piece_ink_at(ink, piece)
        local_bb = bounding_box(local)
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


def _clean_single(gray: np.ndarray) -> Stages | None | object:
    """`preprocess_single` of a clean drawing (see `ink._clean_ink`), or `_UNSURE`.

    The lean branch for the canvas: a drawing whose ink the general path would keep whole
    (one piece, every grey edge pixel within the 2 px `measure.support` of its bright core) is its
    own ink, so neither Otsu's threshold nor a labelling is needed; its stroke is measured
    once, at half the peak, which is exactly what `adjust_stroke` measures and, with a margin,
    decides `is_digit_like`. The 28x28 result is the general path's. Anything else (specks,
    pieces, lines, faint edges, a near-dot) is left to the general path.
    """
    box = clean_ink_box(gray)
    if box is None:
        return _UNSURE
    if box[2] == 0:
        return None
    h, w = gray.shape
    for horizontal in (True, False):
        k = line_kernel(horizontal, w if horizontal else h, box[3], False)
        if k is not None and not too_short(box, gray.shape, horizontal, k):
            return _UNSURE
    x, y, bw, bh = box
    crop = gray[y : y + bh, x : x + bw]
    core = cv2.threshold(crop, _ALWAYS_INK, 255, cv2.THRESH_BINARY)[1]
    if cv2.countNonZero(cv2.subtract(crop, cv2.dilate(core, _DISC5))) or not one_piece(core):
        return _UNSURE
    # The stroke at half the peak (>= 128): what `adjust_stroke` measures. First on a half-size
    # copy; at full size only when a decision is too close to call from it.
    small = halved(crop)
    small_half = cv2.threshold(small, 127, 1, cv2.THRESH_BINARY)[1]
    small_area = cv2.countNonZero(small_half)
    small_box = cv2.boundingRect(small_half)
    side = 2 * max(small_box[2], small_box[3])
    rel = 2 * stroke_width_u8(small_half, small_area, small_box) / max(side, 1)
    sure = 1.0 + HALF_SIZE_ERROR
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
        width = stroke_width_u8(half, area, half_box)
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
    box = clean_ink_box(gray)
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
        k = line_kernel(horizontal, w if horizontal else h, mh, True)
        if k is not None and not too_short(piece_box, gray.shape, horizontal, k):
            return _UNSURE
    if not is_digit_like(weak.view(bool)):
        return []
    ref = float(mh)  # one group: the row's height is its own
    if scorer is None:
        if mw > 1.15 * ref:
            return _UNSURE
    elif mw > 0.6 * ref and (int(round(mw / (SLICE * ref))) > MAX_SLICES or mw > 1.8 * ref):
        return _UNSURE  # too wide to be read whole: segmentation cuts it
    ink_crop = cv2.bitwise_and(crop, crop, mask=cv2.dilate(weak, _DISC5))  # `measure.support`
    ix, iy, iw, ih = cv2.boundingRect(ink_crop)
    cropped, box20, final = normalize_steps(ink_crop, bb=(ix, iy, iw, ih))
    probabilities = None
    if scorer is not None:
        probabilities = np.asarray(scorer(final[None].astype(np.float32)))[0]
        score = reading_score(probabilities, mw, mh, temperature) + shape_prior(mw, mh, ref)
        if mw > 0.6 * ref and score <= -CUT_COST:
            return _UNSURE  # a cut might read better
    ink = np.zeros_like(gray)
    ink[y : y + bh, x : x + bw] = ink_crop
    mask = np.zeros(gray.shape, bool)
    mask[y : y + bh, x : x + bw] = weak.view(bool)
    st = Stages(gray, ink, mask, cropped, box20, final, (x + ix, y + iy, iw, ih), False, "clean")
    return [DigitCrop(piece_box, final, st, probabilities, scorer)]


def _stages(
    gray: np.ndarray,
    ink: np.ndarray,
    mask: np.ndarray,
    info: InkInfo,
    normalized: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    bb: tuple[int, int, int, int] | None = None,
) -> Stages | None:
    """The Stages of one digit's ink; `bb`: the ink's bounding box when already known."""
    bb = bounding_box(ink) if bb is None else bb
    if bb is None:
        return None
    cropped, box, final = normalized if normalized is not None else normalize_steps(ink, bb=bb)
    return Stages(gray, ink, mask, cropped, box, final.astype(np.float32), bb, info.inverted, info.method)
