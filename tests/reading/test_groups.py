"""Gathering pieces into digits: the strokes of one digit merged; dots, dashes and end marks
are not digits, a digit broken into low arcs is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.reading.ink import to_ink
from digit_app.reading.pipeline import preprocess_multi
from digit_app.reading.segment import segment
from tests.reading.support import FONT, draw


def test_a_four_in_two_strokes_is_one_digit():
    img = np.full((160, 160), 255, np.uint8)
    cv2.line(img, (70, 20), (30, 100), 0, 9)  # the open left stroke and the bar
    cv2.line(img, (30, 100), (80, 100), 0, 9)
    cv2.line(img, (95, 40), (92, 145), 0, 9)  # the second stroke, not touching the first
    n, _ = cv2.connectedComponents((img < 128).astype(np.uint8))
    assert n - 1 == 2
    assert len(segment(to_ink(img, multi=True)[1])) == 1
    assert len(preprocess_multi(img)) == 1


def test_a_decimal_point_and_a_dash_are_not_digits():
    img = draw("12", size=(140, 300), org=(20, 110), scale=3.5, thickness=10)
    cv2.circle(img, (160, 108), 5, 0, -1)  # "."
    cv2.putText(img, "3", (180, 110), FONT, 3.5, 0, 10, cv2.LINE_AA)
    cv2.line(img, (255, 70), (285, 70), 0, 6)  # "-"
    boxes = segment(to_ink(img, multi=True)[1])
    assert len(boxes) == 3


def test_an_end_mark_is_not_a_digit_even_when_its_strokes_stand_tall_together():
    # "345 =": each bar of the "=" is flat, the pair is more than half as tall as the digits.
    img = draw("345", size=(140, 360), org=(20, 110), scale=3.5, thickness=10)
    for y in (48, 78):
        cv2.line(img, (275, y), (325, y), 0, 8)
    boxes = segment(to_ink(img, multi=True)[1])
    assert len(boxes) == 3
    assert max(x + w for x, y, w, h in boxes) < 270


@pytest.mark.parametrize("scale", [3.0, 2.6])
def test_a_smaller_digit_broken_into_low_arcs_is_kept(scale: float) -> None:
    # Faint ink: a 0 lower than the 4 beside it, broken across its middle into two arcs, each
    # lower than the dashes dropped above; arcs are not bars, so it stays a digit.
    img = draw("4", size=(140, 300), org=(20, 110), scale=3.5, thickness=10)
    cv2.putText(img, "0", (100, 110), FONT, scale, 0, 10, cv2.LINE_AA)
    ys, _ = np.nonzero(img[:, 100:] < 128)
    mid = (ys.min() + ys.max()) // 2
    img[mid - 2 : mid + 3, 100:] = 255
    assert len(segment(to_ink(img, multi=True)[1])) == 2


def test_broken_stroke_is_merged():
    img = draw("7", size=(200, 200), org=(40, 170), scale=6, thickness=14)
    img[95:101, :] = 255  # a gap across the stem
    assert len(segment(to_ink(img, multi=True)[1])) == 1
