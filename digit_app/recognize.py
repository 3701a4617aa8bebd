"""Image in, digits out: preprocessing plus one batched call to the Predictor.

`recognize` is what the pages, the CLI and the benchmarks call. All digits of an image go to
the model in one `predict_probabilities` batch. A digit the model is unsure about is shown as
"?"; an image without a digit gives an empty string and a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from digit_app.imageio import canvas_to_gray
from digit_app.preprocess import DigitCrop, Stages, preprocess_multi, preprocess_single

NO_DIGIT_MESSAGE = "No digit found. Draw or upload a darker, larger digit."


class _Predicts(Protocol):
    unsure_threshold: float

    def predict_probabilities(self, images: np.ndarray) -> np.ndarray: ...


@dataclass
class DigitResult:
    """One recognised digit."""

    box: tuple[int, int, int, int]  # (x, y, w, h) in the input image
    label: int
    confidence: float
    probabilities: tuple[float, ...]
    unsure: bool
    image28: np.ndarray  # the model's input, (28, 28) float32 0..1
    stages: Stages | None = None

    @property
    def shown(self) -> str:
        return "?" if self.unsure else str(self.label)


@dataclass
class Result:
    """The recognised string, how sure the model is of all of it, and each digit's detail."""

    digits: str  # e.g. "2026", "20?6", or "" when no digit was found
    confidence: float  # product of the digits' confidences (the chance all are right); 0 if none
    detail: list[DigitResult] = field(default_factory=list)
    message: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.detail)


def crops_for(image: np.ndarray, single: bool, predictor: _Predicts | None = None) -> list[DigitCrop]:
    """The 28x28 inputs for an image: one digit (`single`) or every digit, left to right.

    With a predictor, touching digits are split the way the model reads most confidently.
    """
    gray = np.asarray(image)
    if gray.ndim == 3:  # the canvas's RGBA (or an RGB array)
        gray = canvas_to_gray(gray)
    if single:
        st = preprocess_single(gray)
        return [] if st is None else [DigitCrop(st.bbox, st.final, st)]
    scorer = predictor.predict_probabilities if predictor is not None else None
    return preprocess_multi(gray, scorer)


def recognize(image: np.ndarray, predictor: _Predicts, single: bool = True) -> Result:
    """Grayscale (any polarity) or canvas RGBA -> Result, with one model call for all digits."""
    crops = crops_for(image, single, predictor)
    if not crops:
        return Result("", 0.0, [], NO_DIGIT_MESSAGE)
    return results_for(crops, predictor)


def results_for(crops: list[DigitCrop], predictor: _Predicts) -> Result:
    """Classify prepared crops in one batch."""
    batch = np.stack([c.image for c in crops]).astype(np.float32)[..., None]
    probs = np.asarray(predictor.predict_probabilities(batch), dtype=np.float64)
    threshold = float(getattr(predictor, "unsure_threshold", 0.5))
    detail = []
    for crop, p in zip(crops, probs):
        label = int(p.argmax())
        conf = float(p[label])
        detail.append(
            DigitResult(
                crop.box,
                label,
                conf,
                tuple(float(v) for v in p),
                conf < threshold,
                crop.image,
                crop.stages,
            )
        )
    digits = "".join(d.shown for d in detail)
    confidence = float(np.prod([d.confidence for d in detail]))
    message = None
    if any(d.unsure for d in detail):
        message = "The model is unsure about the digits shown as ?; try writing them more clearly."
    return Result(digits, confidence, detail, message)
