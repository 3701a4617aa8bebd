"""The string reader: the `digit_string` model reads a whole row of digits at once.

In: a grayscale picture of a number (or the canvas's redrawn strokes). Out: a `StringReading`:
the app's usual `Result` (digits, each with a box, a confidence, ten probabilities, "?" when
unsure, its 28x28 picture), plus the frame probabilities, so that any other candidate
string (the segmentation reader's) can be scored by this model too (`log_probability`).

Why: segmentation must cut a number into digits before reading them, and joined, cursive or
overlapping digits defeat the cuts. This model needs no cuts (CTC); the app reads every
number with both readers and decides between them (`digit_app.decide`).

The model is loaded from `<model_store>/digit_string/<N>/` (TensorFlow Serving's layout) and
run by its TensorFlow Lite twin (`digit_string-tflite/<N>/`) when that twin answers as the
SavedModel does on a probe row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from digit_app.ctc import BLANK, Decoded, align, best_path, string_log_probability, string_probability
from digit_app.lite import LiteRows, checked_twin
from digit_app.model_store import latest_version, read_card, tflite_dir, version_dir
from digit_app.result import DigitResult, Result
from digit_app.string_input import (
    HEIGHT,
    StringInput,
    batch_rows,
    digit_boxes,
    digit_image,
    prepare,
    prepare_ink,
    views,
)

INPUT_NAME = "image"
OUTPUT_NAME = "frame_probabilities"
# How the pages say that the string reader's answer was shown (`Result.reader == "string"`).
WHOLE = "read as a whole row by the string reader"
# The row's other views (`string_input.views`) are read only when the row's own best path has
# a lower P than this: a sure reading rarely changes, and the views cost about twice the row.
SURE_ALONE = 0.9
# In a stored 28x28 digit, pixels brighter than this (of 255) are ink: their box is what it reads.
_INK_LEVEL = 40


@dataclass
class StringReading:
    """What the string reader made of one picture."""

    result: Result  # digits, boxes, confidences, probabilities, as the pages show them
    frames: np.ndarray | None  # (T, 11) frame probabilities; None when no ink was found
    decoded: list[Decoded]
    log_probability: float  # log P(result's digits | picture) under the model (all alignments)
    row: StringInput | None = None
    views: list[np.ndarray] = field(default_factory=list)  # frames of the row's other views

    def log_probability_of(self, digits: str) -> float:
        """log P(digits | picture) for any candidate string, averaged over the row and its
        other views (`string_input.views`); -inf without frames."""
        if self.frames is None:
            return 0.0 if not digits else float("-inf")
        return float(np.mean([string_log_probability(f, digits) for f in [self.frames, *self.views]]))


class StringReader:
    """A loaded `digit_string` version; load it once per process and share it."""

    def __init__(
        self, model_dir: Path, version: int, card: dict, fn: object, loaded: object, threshold: float
    ) -> None:
        self.model_dir, self.version, self.card = Path(model_dir), version, card
        self.unsure_threshold = threshold
        self._fn, self._loaded = fn, loaded  # `loaded` owns the variables `fn` reads
        self._lite: LiteRows | None = None

    @property
    def runtime(self) -> str:
        return "TensorFlow Lite" if self._lite is not None else "SavedModel"

    @classmethod
    def load(
        cls, model_dir: Path, version: int | None = None, unsure_threshold: float = 0.5, lite: bool = True
    ) -> StringReader:
        import tensorflow as tf

        version = latest_version(model_dir) if version is None else version
        loaded = tf.saved_model.load(str(version_dir(model_dir, version)))
        reader = cls(
            model_dir,
            version,
            read_card(model_dir, version),
            loaded.signatures["serving_default"],
            loaded,
            unsure_threshold,
        )
        if lite:
            probe = batch_rows([probe_row()])
            reader._lite = checked_twin(
                tflite_dir(Path(model_dir), version), reader._saved_model, probe, LiteRows
            )
        reader.frame_probabilities([probe_row()])  # warm-up
        return reader

    def _saved_model(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._fn(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()

    def frame_probabilities(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """(HEIGHT, W_i) rows -> (W_i / 4, 11) frame probabilities each."""
        if not rows:
            return []
        batch = batch_rows(rows)
        probs = self._lite(batch) if self._lite is not None else self._saved_model(batch)
        return [p[: r.shape[1] // 4] for p, r in zip(probs, rows)]

    def label_probabilities(self, images28: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """P(label as a one-digit string | image) for stored 28x28 digits (white on black, 0..1).

        Why: a second opinion that is not the digit model's, for checking stored labels
        (`digit_app.suspicion`); this network learned from other data, so its mistakes differ.
        """
        out = np.zeros(len(images28), np.float64)
        for start in range(0, len(images28), 256):
            rows, at = [], []
            for i, img in enumerate(images28[start : start + 256], start):
                ink = (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
                row = prepare_ink(ink, ink > _INK_LEVEL)
                if row is not None:
                    rows.append(row.row)
                    at.append(i)
            for i, frames in zip(at, self.frame_probabilities(rows)):
                out[i] = np.exp(string_log_probability(frames, str(int(labels[i]))))
        return out

    def read(self, gray: np.ndarray) -> StringReading:
        """Read a picture of a number (grayscale, either polarity)."""
        return self.read_prepared(prepare(gray))

    def read_prepared(self, row: StringInput | None) -> StringReading:
        if row is None:
            return StringReading(Result("", 0.0, [], "No digit found."), None, [], 0.0, None)
        frames = self.frame_probabilities([row.row])[0]
        own = best_path(frames)
        other = []
        if string_probability(frames, _digits(own)) < SURE_ALONE:
            other = self.frame_probabilities(views(row.row))
        reading = StringReading(Result("", 0.0, []), frames, own, 0.0, row, other)
        decoded = _choose(reading) if other else own
        detail = [
            DigitResult(
                box,
                d.label,
                d.confidence,
                d.probabilities,
                d.confidence < self.unsure_threshold,
                digit_image(row, box),
            )
            for d, box in zip(decoded, digit_boxes(row, decoded))
        ]
        digits = "".join(x.shown for x in detail)
        logp = reading.log_probability_of(_digits(decoded))
        message = None
        if not detail:
            message = "No digit found."
        elif any(x.unsure for x in detail):
            message = "The model is unsure about the digits shown as ?; try writing them more clearly."
        result = Result(digits, float(np.exp(logp)) if detail else 0.0, detail, message, "string")
        return StringReading(result, frames, decoded, logp, row, other)


def _digits(decoded: list[Decoded]) -> str:
    return "".join(str(d.label) for d in decoded)


def _choose(reading: StringReading) -> list[Decoded]:
    """The reading of the row that is likeliest over all its views: each view's best path is a
    candidate (the row's own, `reading.decoded`, wins ties). A candidate from another view keeps that view's
    probabilities per digit, placed on the row's frames by alignment (for the boxes)."""
    paths = [reading.decoded, *(best_path(f) for f in reading.views)]
    own = _digits(paths[0])
    chosen = max({_digits(p) for p in paths}, key=lambda c: (reading.log_probability_of(c), c == own))
    if chosen == own:
        return paths[0]
    placed = align(reading.frames, chosen)
    seen = next(p for p in paths if _digits(p) == chosen)
    if len(placed) != len(seen):
        return paths[0]
    return [
        replace(at, probabilities=d.probabilities, confidence=d.confidence) for at, d in zip(placed, seen)
    ]


def probe_row() -> np.ndarray:
    """A row the twin must read as the SavedModel does: printed digits, a joined pair, a dash."""
    img = np.zeros((HEIGHT, 120), np.uint8)
    cv2.putText(img, "2071", (6, 27), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2, cv2.LINE_AA)
    cv2.line(img, (96, 16), (114, 16), 255, 2, cv2.LINE_AA)
    return img.astype(np.float32) / 255.0


__all__ = ["BLANK", "StringReader", "StringReading", "probe_row"]
