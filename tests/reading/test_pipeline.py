"""The stages chained, and the shortcut for clean canvas drawings giving the general path's result."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.reading.ink import to_ink, to_ink_detail
from digit_app.reading.pipeline import preprocess_multi, preprocess_single
from tests.reading.support import CLEAN_CANVASES, FONT, TWO, FakePredictor, canvas


@pytest.mark.parametrize("name", list(CLEAN_CANVASES))
def test_clean_shortcut_gives_the_general_result(name):
    img = CLEAN_CANVASES[name]
    fast_ink, fast_mask, info = to_ink_detail(img)
    ink, mask = to_ink(img, fast=False)
    assert info.method == "clean" or name == "mnist-sized"  # the shortcut was taken
    assert np.array_equal(fast_ink, ink) and np.array_equal(fast_mask, mask)
    a, b = preprocess_single(img), preprocess_single(img, fast=False)
    assert (a is None) == (b is None)
    if a is not None:
        assert a.method == "clean" or name == "mnist-sized"
        assert a.bbox == b.bbox and np.abs(a.final - b.final).max() < 1e-3
    for scorer in (None, FakePredictor().predict_probabilities, FakePredictor(0.2).predict_probabilities):
        fast_crops, general = preprocess_multi(img, scorer), preprocess_multi(img, scorer, fast=False)
        for multi_a, multi_b in zip(fast_crops, general, strict=True):
            assert multi_a.box == multi_b.box and np.abs(multi_a.image - multi_b.image).max() < 1e-3
            assert multi_a.stages.bbox == multi_b.stages.bbox
            assert np.array_equal(multi_a.stages.mask, multi_b.stages.mask)


def test_clean_shortcut_on_a_row_of_digits():
    img = np.zeros((140, 600), np.uint8)
    cv2.putText(img, "2031", (30, 110), FONT, 3.5, 255, 12, cv2.LINE_AA)
    cv2.circle(img, (560, 100), 4, 255, -1, cv2.LINE_AA)  # a dot
    underlined = img.copy()
    cv2.line(underlined, (25, 122), (575, 122), 255, 3, cv2.LINE_AA)
    for row in (img, underlined):
        ink, mask, info = to_ink_detail(row, multi=True)
        assert info.method == "clean"
        general_ink, general_mask = to_ink(row, multi=True, fast=False)
        assert np.array_equal(ink, general_ink) and np.array_equal(mask, general_mask)
        fake = FakePredictor()
        a = preprocess_multi(row, fake.predict_probabilities)
        b = preprocess_multi(row, fake.predict_probabilities, fast=False)
        assert len(a) == 4 and [c.box for c in a] == [c.box for c in b]
        assert max(np.abs(x.image - y.image).max() for x, y in zip(a, b)) < 1e-3
    assert "removed ruled/grid lines" in info.notes  # the underline went, as in the general path


def test_clean_shortcut_drops_specks_like_the_general_path():
    img = canvas(TWO)
    cv2.circle(img, (250, 250), 1, 255, -1)  # a 5-pixel speck far from the digit
    st = preprocess_single(img)
    assert st is not None and st.bbox == preprocess_single(canvas(TWO)).bbox
