"""From a reading and what the user typed to stored feedback rows.

In: a `Result` of the reading path (its digits, each with a box, a 28x28 picture and
probabilities), the digits the user says are right, and the source image. Out: one
`feedback.Sample` per digit, stored (`record`), or a `FeedbackError` saying what to type.

Why a module of its own: the store (`digit_app.feedback`) knows rows and tables; this is the
one place that turns what the pages show into rows, for the Draw and Upload pages alike.
"""

from __future__ import annotations

import numpy as np

from digit_app.feedback import FeedbackError, FeedbackStore, Sample


def parse_truth(text: str, n_digits: int) -> list[int]:
    """The true digits a user typed for a result with `n_digits` digits (spaces ignored)."""
    digits = "".join(str(text).split())
    if not digits.isdigit() or not digits.isascii():
        raise FeedbackError("type the correct digits using 0-9 only")
    if len(digits) != n_digits:
        found = "1 digit" if n_digits == 1 else f"{n_digits} digits"
        raise FeedbackError(f"the image has {found}; type exactly {n_digits} digit(s), one for each box")
    return [int(c) for c in digits]


def _crop(gray: np.ndarray | None, box: tuple[int, int, int, int], whole: bool) -> np.ndarray | None:
    """The part of the source image a digit came from (with a margin), to keep as its original."""
    if gray is None:
        return None
    if whole:
        return gray
    x, y, w, h = box
    m = max(w, h) // 4 + 2
    return gray[max(0, y - m) : y + h + m, max(0, x - m) : x + w + m]


def samples_from_result(
    result: object,
    truth: str,
    *,
    source: str,
    session_id: str,
    model_version: int | None,
    image: np.ndarray | None = None,
) -> list[Sample]:
    """One Sample per recognised digit, labelled with what the user says is right."""
    detail = list(getattr(result, "detail", []))
    if not detail:
        raise FeedbackError("there is no recognised digit to confirm or correct")
    labels = parse_truth(truth, len(detail))
    return [
        Sample(
            image28=d.image28,
            label=label,
            predicted=int(d.label),
            probabilities=d.probabilities,
            model_version=model_version,
            source=source,
            session_id=session_id,
            original=_crop(image, d.box, whole=len(detail) == 1 and source == "canvas"),
        )
        for d, label in zip(detail, labels, strict=True)
    ]


def record(
    result: object,
    truth: str,
    *,
    source: str,
    session_id: str,
    model_version: int | None,
    image: np.ndarray | None = None,
    store: FeedbackStore | None = None,
) -> list[int]:
    """Store a user's confirmation or correction of a result; returns the new row ids."""
    samples = samples_from_result(
        result, truth, source=source, session_id=session_id, model_version=model_version, image=image
    )
    return (store or FeedbackStore()).add_many(samples)
