"""Image in, digits out: the whole reading path, with one batched call to the model.

    decode      `imageio`: an upload's bytes (`decode_image`) or the canvas's RGBA -> grayscale
    ink         `reading.ink`: white ink on black; polarity, paper and uneven light removed
    clean       `reading.clean`: specks, ruled or grid lines, slivers of neighbouring cells
    normalise   `reading.normalize`: one digit -> 28x28, as MNIST was made
     or segment `reading.segment`: a row -> one piece per digit (the model asked where
                digits touch), each normalised
    predict     `Predictor.predict_probabilities`: every digit of an image in one batch
    pen         `Predictor.blend_pen`: a drawing's strokes, given to the digit whose box holds
                them, blended in when the store has a pen model (`digit_app.pen`)
    string      multi mode, when the store has a string reader: the whole row read at once
                (`string_reader`), and the answer picked between both readers (`decide`)

`reading.pipeline` chains the reading stages; `recognize` is what the pages, the CLI and the
benchmarks call. When segmentation already asked the model about the digits it kept (multi
mode), those answers are used and the model is not asked again. `recognize_batch` does the
same for many images with one batch for all of their digits. A digit the model is unsure
about is shown as "?"; an image without a digit gives an empty string and a message saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import cv2
import numpy as np

from digit_app.decide import is_sure, read_both, read_first
from digit_app.imageio import canvas_to_gray
from digit_app.pen import strokes_in_boxes
from digit_app.reading.pipeline import preprocess_multi, preprocess_single
from digit_app.reading.types import DigitCrop
from digit_app.result import DigitResult, Result

NO_DIGIT_MESSAGE = "No digit found. Draw or upload a darker, larger digit."
# `recognize_batch` prepares and predicts this many images at a time, the model reading one chunk
# in a worker thread while the next is prepared: preprocessing holds the GIL, the model's
# runtimes (TensorFlow Lite, TensorFlow) release it. 10,000 canvas images on 2 cores,
# 2026-12-02: 3.9-4.0 s one chunk after the other, 3.0-3.1 s overlapped (chunks of 512-2048
# alike). Two chunks are alive at a time, which bounds the memory of a large batch.
BATCH_CHUNK = 1024


class _Predicts(Protocol):
    unsure_threshold: float

    def predict_probabilities(self, images: np.ndarray) -> np.ndarray: ...


def _to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) grayscale as given, or the canvas's RGBA / an RGB array as `canvas_to_gray` sees it."""
    arr = np.asarray(image)
    if arr.ndim != 3:
        return arr
    if arr.dtype == np.uint8 and arr.shape[2] == 4 and min(arr.shape[:2]) > 0:
        # The usual canvas: opaque, grey strokes (R = G = B). Its luma is any one channel, so
        # `canvas_to_gray` of that channel alone is the same image, without the float luma.
        r, g, b, a = cv2.split(np.ascontiguousarray(arr))
        if cv2.minMaxLoc(a)[0] == 255 and np.array_equal(r, g) and np.array_equal(r, b):
            return canvas_to_gray(r)
    return canvas_to_gray(arr)


def crops_for(
    image: np.ndarray, single: bool, predictor: _Predicts | None = None, stages: bool = True
) -> list[DigitCrop]:
    """The 28x28 inputs for an image: one digit (`single`) or every digit, left to right.

    With a predictor, touching digits are split the way the model reads most confidently.
    `stages=False` drops the intermediate images (full-size arrays) to save memory.
    """
    gray = _to_gray(image)
    if single:
        st = preprocess_single(gray)
        crops = [] if st is None else [DigitCrop(st.bbox, st.final, st)]
    else:
        scorer = predictor.predict_probabilities if predictor is not None else None
        checker = predictor.one_digit_probability if getattr(predictor, "has_checker", False) else None
        crops = preprocess_multi(
            gray, scorer, temperature=float(getattr(predictor, "temperature", 1.0)), checker=checker
        )
    if not stages:
        for c in crops:
            c.stages = None
    return crops


Strokes = Sequence[np.ndarray]  # a drawing's pen strokes, (N, 2) points each in the image's pixels


def recognize(
    image: np.ndarray, predictor: _Predicts, single: bool = True, strokes: Strokes | None = None
) -> Result:
    """Grayscale (any polarity) or canvas RGBA -> Result, with one model call for all digits.

    With the `strokes` the image was drawn from (the Draw page), each digit's strokes are read
    by the pen model too, when the predictor has one. In multi mode, a predictor with a string
    reader reads the image with it as well, and `decide` picks the answer shown."""
    gray = _to_gray(image)
    string_reader = None if single else getattr(predictor, "string_reader", None)
    first = read_first(gray, string_reader) if string_reader is not None else None
    if is_sure(first):
        return first.result
    crops = crops_for(gray, single, predictor)
    if crops:
        result = with_strokes(results_for(crops, predictor), crops, strokes, predictor)
    else:
        result = Result("", 0.0, [], NO_DIGIT_MESSAGE)
    if string_reader is None:
        return result
    return read_both(gray, result, string_reader, predictor, first).result


def with_strokes(
    result: Result, crops: list[DigitCrop], strokes: Strokes | None, predictor: object
) -> Result:
    """The result with each digit's probabilities blended with the pen model's reading of its
    strokes; unchanged without strokes or pen model, or when a stroke spans two digits' boxes."""
    if not strokes or not result.detail or not getattr(predictor, "has_pen", False):
        return result
    per_digit = strokes_in_boxes(strokes, [d.box for d in result.detail])
    if per_digit is None:
        return result
    probs = predictor.blend_pen(np.array([d.probabilities for d in result.detail]), per_digit)
    return _result(crops, list(probs), float(getattr(predictor, "unsure_threshold", 0.5)))


def recognize_batch(
    images: Sequence[np.ndarray],
    predictor: _Predicts,
    single: bool = True,
    stages: bool = False,
    strokes: Sequence[Strokes | None] | None = None,
) -> list[Result]:
    """Many images -> one Result each, with one model call per chunk of BATCH_CHUNK images.

    While the model reads a chunk (in one worker thread), the next chunk is prepared. Multi
    mode still asks the model during segmentation of each image that needs it. Without
    `stages` the intermediate images are not kept (a large batch would hold them all). With
    `strokes` (one entry per image, or None), drawings are read as `recognize` reads them, and
    in multi mode a string reader reads each image too, as in `recognize`.
    """
    images = list(images)
    out: list[Result] = []
    kept: list[list[DigitCrop]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recognize-batch") as model_thread:
        reading: Future[list[Result]] | None = None
        for start in range(0, len(images), BATCH_CHUNK):
            crops = [
                crops_for(image, single, predictor, stages) for image in images[start : start + BATCH_CHUNK]
            ]
            if strokes is not None:
                kept += crops
            if reading is not None:
                out += reading.result()
            reading = model_thread.submit(results_for_many, crops, predictor)
        if reading is not None:
            out += reading.result()
    if strokes is not None:
        out = [with_strokes(r, c, s, predictor) for r, c, s in zip(out, kept, strokes)]
    string_reader = getattr(predictor, "string_reader", None)
    if not single and string_reader is not None:
        out = [read_both(_to_gray(i), r, string_reader, predictor).result for i, r in zip(images, out)]
    return out


def results_for(crops: list[DigitCrop], predictor: _Predicts) -> Result:
    """Classify prepared crops in one batch."""
    return results_for_many([crops], predictor)[0]


def results_for_many(crops_per_image: Sequence[list[DigitCrop]], predictor: _Predicts) -> list[Result]:
    """Classify the prepared crops of many images in one batch; one Result per image.

    Crops that segmentation already scored with this predictor keep those probabilities.
    """
    own = predictor.predict_probabilities
    todo = [c for crops in crops_per_image for c in crops if c.probabilities is None or c.scored_by != own]
    if todo:
        batch = np.stack([c.image for c in todo]).astype(np.float32)[..., None]
        fresh = iter(np.asarray(own(batch), dtype=np.float64))
    threshold = float(getattr(predictor, "unsure_threshold", 0.5))
    out = []
    for crops in crops_per_image:
        if not crops:
            out.append(Result("", 0.0, [], NO_DIGIT_MESSAGE))
            continue
        probs = [
            next(fresh)
            if c.probabilities is None or c.scored_by != own
            else np.asarray(c.probabilities, np.float64)
            for c in crops
        ]
        out.append(_result(crops, probs, threshold))
    return out


def _result(crops: list[DigitCrop], probs: list[np.ndarray], threshold: float) -> Result:
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
