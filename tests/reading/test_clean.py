"""Cleaning: specks, ruled and grid lines and slivers of neighbouring cells go; digits, a lone 1
and a long bar stay."""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.ink import to_ink
from digit_app.reading.pipeline import preprocess_single
from digit_app.reading.segment import segment
from digit_app.reading.types import BOX
from tests.reading.support import draw, final, similarity


def test_specks_are_removed():
    clean = draw("7")
    noisy = clean.copy()
    rng = np.random.default_rng(1)
    for x, y in rng.integers(5, 195, (15, 2)):
        cv2.circle(noisy, (int(x), int(y)), 1, 0, -1)
    assert similarity(final(noisy), final(clean)) > 0.98


def test_grid_lines_and_border_slivers_are_dropped():
    clean = draw("2", size=(200, 200), org=(45, 160))
    cell = clean.copy()
    cv2.line(cell, (0, 3), (199, 3), 60, 2)  # grid line along the top
    cv2.line(cell, (196, 0), (196, 199), 60, 2)  # and along the right edge
    cv2.ellipse(cell, (-10, 100), (22, 30), 0, -60, 60, 0, 9)  # a neighbour's stroke cut at the left edge
    assert similarity(final(cell), final(clean)) > 0.97


def test_ruled_line_through_the_digit_is_removed():
    clean = draw("3", size=(200, 200), org=(45, 160))
    ruled = clean.copy()
    cv2.line(ruled, (0, 170), (199, 170), 0, 2)
    assert similarity(final(ruled), final(clean)) > 0.95


def test_a_lone_one_is_not_taken_for_a_line():
    img = np.full((200, 200), 255, np.uint8)
    cv2.line(img, (100, 10), (100, 190), 0, 10)
    st = preprocess_single(img)
    assert st is not None and st.box20.shape[0] == BOX


def test_single_speck_or_dot():
    img = np.full((200, 200), 255, np.uint8)
    cv2.circle(img, (80, 120), 2, 0, -1)
    assert preprocess_single(img) is None
    canvas = np.zeros((280, 280), np.uint8)
    cv2.circle(canvas, (140, 140), 9, 255, -1, cv2.LINE_AA)  # one click of an 18-px brush
    assert preprocess_single(canvas) is None


def test_multi_mode_keeps_a_long_bar_but_drops_an_underline():
    # One big 7 on the canvas read in multi mode: its bar spans most of the width but is a digit.
    canvas = np.zeros((280, 280), np.uint8)
    cv2.line(canvas, (30, 40), (250, 40), 255, 18)
    cv2.line(canvas, (250, 40), (120, 250), 255, 18)
    ink, mask = to_ink(canvas, multi=True)
    assert mask[40, 40] and mask[40, 140]
    # A row of digits underlined by a line that touches them: the line goes, the digits stay.
    row = draw("123", size=(130, 330), org=(20, 100), scale=3.2, thickness=9)
    cv2.line(row, (0, 104), (329, 104), 0, 3)
    row_mask = to_ink(row, multi=True)[1]
    assert not row_mask[100:110, 250:].any()  # the line beyond the digits is gone
    assert len(segment(row_mask)) == 3
