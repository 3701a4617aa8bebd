"""A picture of a number -> the string model's input row, and the model's frames -> boxes.

In: a grayscale image (any polarity, a drawing, a scan, a photo) holding one row of digits.
Out: `StringInput`, the row as the `digit_string` model reads it: the image's ink (found by the
reading path's own `to_ink`, so lines, specks and uneven light are handled as for the
segmentation reader) cropped to its bounding box, scaled to INK_ROWS rows inside a HEIGHT-row
field, with MARGIN blank columns on both sides, width a multiple of STRIDE. And back: the
digits' frames (`digit_app.ctc.Decoded`) as boxes in the input image, with each digit's
28x28 crop for display and for the feedback the user gives.

Why: the model must see exactly what training showed it, so training builds its rows with
this same function (`training.strings`), and the app must show a box per digit although a
CTC model only says in which frames it saw each digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from digit_app.ctc import Decoded
from digit_app.reading.ink import to_ink
from digit_app.reading.normalize import normalize_digit

HEIGHT = 32  # rows of the model's input
INK_ROWS = 28  # the ink's bounding box is scaled to this many rows (a 2-row blank edge above and below)
MARGIN = 4  # blank columns left and right of the ink
STRIDE = 4  # input columns per output frame (the network pools the width by 4)
MAX_WIDTH = 512  # a wider row is squeezed sideways to fit (about 14 digits written apart)


@dataclass
class StringInput:
    """The model's row for one image, and how to map its columns back onto the image."""

    row: np.ndarray  # (HEIGHT, W) float32 0..1, white ink on black; W a multiple of STRIDE
    ink: np.ndarray  # (H, W) uint8 the image's ink, white on black (as `to_ink` gives it)
    mask: np.ndarray  # (H, W) bool the ink pixels
    box: tuple[int, int, int, int]  # (x, y, w, h) of the ink in the image
    x_scale: float  # row columns per image column

    @property
    def frames(self) -> int:
        return self.row.shape[1] // STRIDE

    def image_x(self, column: float) -> float:
        """The image column under a column of the row."""
        return self.box[0] + (column - MARGIN) / self.x_scale


def prepare(gray: np.ndarray) -> StringInput | None:
    """The model's row for a grayscale image; None when the image holds no ink."""
    ink, mask = to_ink(gray, multi=True)
    return prepare_ink(ink, mask)


def prepare_ink(ink: np.ndarray, mask: np.ndarray) -> StringInput | None:
    """`prepare` for ink already found (white on black, uint8, and its mask)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0:
        return None
    crop = ink[y : y + h, x : x + w]
    scale = INK_ROWS / h
    width = max(1, int(round(w * scale)))
    width = min(width, MAX_WIDTH - 2 * MARGIN)
    shrink = width < w or h > INK_ROWS
    resized = cv2.resize(
        crop, (width, INK_ROWS), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    total = -(-(width + 2 * MARGIN) // STRIDE) * STRIDE
    row = np.zeros((HEIGHT, total), np.float32)
    top = (HEIGHT - INK_ROWS) // 2
    row[top : top + INK_ROWS, MARGIN : MARGIN + width] = resized.astype(np.float32) / 255.0
    return StringInput(row, ink, mask.astype(bool), (int(x), int(y), int(w), int(h)), width / w)


# The slants of a row's other views (`views`): x shifts by this times the height above the
# middle row. Chosen on 600 numbers of the string model's validation writers (train splits),
# string model version 2, 2026-12-04: the model alone read 81.7% whole from the row, 83.3% with
# these two views, 83.0% with two widths (x0.85, x1.15) instead and 83.7% with all four, which
# take twice as long (docs/string-reader.md).
VIEWS = (-0.2, 0.2)


def views(row: np.ndarray) -> list[np.ndarray]:
    """The row slanted each way of `VIEWS`, widened so that its ink stays inside the field.

    Why: the model's mistakes depend on a writer's slant; a string that stays likely under
    every view is more often the one written (measured at `VIEWS`).
    """
    out = []
    for shear in VIEWS:
        pad = int(abs(shear) * HEIGHT) + 1
        total = -(-(row.shape[1] + 2 * pad) // STRIDE) * STRIDE
        wide = np.pad(row, ((0, 0), (pad, total - pad - row.shape[1])))
        slant = np.float32([[1, shear, -shear * HEIGHT / 2], [0, 1, 0]])
        out.append(cv2.warpAffine(wide, slant, (total, HEIGHT), flags=cv2.INTER_LINEAR))
    return out


def batch_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of different widths as one (N, HEIGHT, W, 1) batch, padded on the right with blank
    (the model reads blank columns as no digit)."""
    width = max(r.shape[1] for r in rows)
    out = np.zeros((len(rows), HEIGHT, width, 1), np.float32)
    for i, r in enumerate(rows):
        out[i, :, : r.shape[1], 0] = r
    return out


def digit_boxes(inp: StringInput, digits: Sequence[Decoded]) -> list[tuple[int, int, int, int]]:
    """A box per decoded digit in the image: the ink between the cuts that separate each digit's
    surest frame from its neighbours'. A cut goes through the column with the least ink between
    two peaks (a ligature's thin stroke, a gap), so touching digits get boxes of their own."""
    x0, _, w, _ = inp.box
    columns = inp.mask[:, x0 : x0 + w].sum(axis=0)
    centres = [inp.image_x(STRIDE * d.peak + STRIDE / 2) - x0 for d in digits]
    cuts = [0]
    for a, b in zip(centres, centres[1:]):
        lo, hi = int(np.clip(np.floor(a), 0, w - 1)), int(np.clip(np.ceil(b), 0, w - 1))
        if hi - lo <= 1:
            cuts.append(int(np.clip(round((a + b) / 2), 0, w - 1)))
            continue
        between = columns[lo + 1 : hi]
        lowest = np.flatnonzero(between == between.min())
        cuts.append(lo + 1 + int(lowest[len(lowest) // 2]))
    cuts.append(w)
    boxes = []
    for left, right in zip(cuts, cuts[1:]):
        right = max(right, left + 1)
        part = inp.mask[:, x0 + left : x0 + right]
        ys, xs = np.nonzero(part)
        if len(ys) == 0:
            boxes.append((x0 + left, inp.box[1], right - left, inp.box[3]))
            continue
        boxes.append(
            (
                x0 + left + int(xs.min()),
                int(ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            )
        )
    return boxes


def digit_image(inp: StringInput, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (28, 28) MNIST-style picture of the ink in a box: what the user sees for the digit
    and what a correction stores, as for the segmentation reader's digits."""
    x, y, w, h = box
    piece = inp.ink[y : y + h, x : x + w]
    if not inp.mask[y : y + h, x : x + w].any():
        return np.zeros((28, 28), np.float32)
    return normalize_digit(piece)
