"""Segmentation: the digits of a row found left to right, touching ones split, and the model
asked once per row."""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.ink import to_ink
from digit_app.reading.pipeline import preprocess_multi
from digit_app.reading.segment import segment, segment_pieces
from digit_app.reading.types import SIZE
from tests.reading.support import FONT, FakePredictor, draw, final, similarity


def _centres(boxes):
    return [x + w / 2 for x, y, w, h in boxes]


def test_segment_separate_digits_left_to_right():
    img = draw("2026", size=(140, 420), org=(20, 110), scale=3.5, thickness=10)
    crops = preprocess_multi(img)
    assert len(crops) == 4
    xs = _centres([c.box for c in crops])
    assert xs == sorted(xs)
    for c in crops:
        assert c.image.shape == (SIZE, SIZE)
        # Each crop is one digit: a 2 and a 0 drawn alone give the same image.
    alone = final(draw("0", size=(140, 140), org=(20, 110), scale=3.5, thickness=10))
    assert similarity(crops[1].image, alone) > 0.95


def test_segment_touching_digits_are_split():
    img = np.full((140, 300), 255, np.uint8)
    # Draw each digit closer than its width so the strokes run into each other.
    for i, ch in enumerate("2026"):
        cv2.putText(img, ch, (10 + 54 * i, 110), FONT, 3.5, 0, 14, cv2.LINE_AA)
    n, _ = cv2.connectedComponents((img < 128).astype(np.uint8))
    assert n - 1 <= 2, "the test image should have touching digits"
    boxes = segment(to_ink(img, multi=True)[1])
    assert len(boxes) == 4
    xs = _centres(boxes)
    for got, expected in zip(xs, [10 + 54 * i + 31 for i in range(4)]):
        assert abs(got - expected) < 12


def test_segmentation_with_a_scorer_reads_each_row_in_one_batch():
    img = draw("2026", size=(140, 420), org=(20, 110), scale=3.5, thickness=10)
    ink, mask = to_ink(img, multi=True)
    fake = FakePredictor()
    pieces = segment_pieces(mask, ink, fake.predict_probabilities)
    assert [p.box for p in pieces] == segment(mask)  # well separated: the model is not needed
    assert fake.calls == 1
    for p in pieces:
        assert p.mask.shape == (p.box[3], p.box[2]) and p.mask.any()
