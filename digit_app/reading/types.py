"""What the reading stages hand each other, and the size of what the model reads.

In: nothing (the bottom of `digit_app.reading`: it imports no stage). Out: the MNIST geometry
(`SIZE`, `BOX`, `CENTER`); the records passed up the path: `InkInfo` from ink extraction,
`Piece` from segmentation, `Stages` and `DigitCrop` to the caller; and the signatures of the
model functions segmentation may ask (`Scorer`, `Checker`). Kept apart so that any stage can
name them without importing another stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SIZE = 28  # the model's input side
BOX = 20  # the longer side of the digit inside it, as in MNIST
# Where MNIST puts the centre of mass, in pixel-index coordinates (pixel i spans i-0.5..i+0.5).
# Measured on the MNIST test set: mean (14.00, 13.99), i.e. the centre of pixel (14, 14), half
# a pixel right of and below the geometric centre 13.5 (= 14.0 in the x+0.5 convention).
# Matching it exactly means an MNIST digit passes through unchanged (no half-pixel blur).
CENTER = SIZE // 2

Scorer = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, 10) probabilities
Checker = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N,) P(one digit)


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
    """What `ink.to_ink` decided, for display and debugging."""

    inverted: bool
    method: str
    background: float  # background level of the input (0..255)
    contrast: float  # ink level minus background, 0 when no ink was found
    notes: list[str] = field(default_factory=list)
    # The connected components of the returned mask when they were computed on the way
    # (count, labels, stats of `measure.label_components`, with labels of dropped pieces left out of
    # `kept`), so that segmentation does not label the image again.
    components: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)


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
