"""Ink extraction on synthetic digits: polarity, paper level, uneven light, anti-aliasing, and
images holding no ink at all."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.imageio import canvas_to_gray
from digit_app.reading.ink import to_ink, to_ink_detail
from digit_app.reading.normalize import center_of_mass
from digit_app.reading.pipeline import preprocess_multi, preprocess_single
from digit_app.reading.types import CENTER
from tests.reading.support import FONT, canvas, draw, final, similarity


def test_polarity_inverted_image_gives_the_same_result():
    dark_on_light = draw("8")
    a = final(dark_on_light)
    b = final(255 - dark_on_light)
    assert similarity(a, b) > 0.99
    assert preprocess_single(dark_on_light).inverted and not preprocess_single(255 - dark_on_light).inverted


def test_grey_paper_and_faint_ink():
    a = final(draw("4"))
    b = final(draw("4", ink=90, paper=170))
    assert similarity(a, b) > 0.97


def test_anti_aliasing_is_kept():
    ink, mask = to_ink(draw("0"))
    assert ink.dtype == np.uint8 and mask.dtype == bool
    values = ink[ink > 0]
    assert ((values > 10) & (values < 245)).sum() > 50  # grey edge pixels survive
    assert ink[~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)].max() == 0


def test_uneven_lighting_uses_a_local_background():
    clean = draw("5", size=(240, 240), org=(50, 190))
    ramp = np.linspace(0, 130, 240, dtype=np.float32)[None, :] + np.linspace(0, 60, 240)[:, None]
    shadowed = np.clip(clean.astype(np.float32) - ramp, 0, 255).astype(np.uint8)
    st = preprocess_single(shadowed)
    assert st is not None and st.method == "adaptive"
    assert similarity(st.final, final(clean)) > 0.95


def test_canvas_drawing_end_to_end():
    rgba = np.zeros((280, 280, 4), np.uint8)
    cv2.putText(rgba, "9", (70, 230), FONT, 7.0, (255, 255, 255, 255), 18, cv2.LINE_AA)
    st = preprocess_single(canvas_to_gray(rgba))
    assert st is not None and not st.inverted
    cx, cy = center_of_mass(st.final)
    assert abs(cx - CENTER) < 0.5 and abs(cy - CENTER) < 0.5


def test_empty_canvas():
    assert preprocess_single(canvas_to_gray(np.zeros((280, 280, 4), np.uint8))) is None
    assert preprocess_multi(np.zeros((280, 280), np.uint8)) == []


@pytest.mark.parametrize("level", [0, 128, 255])
def test_uniform_image(level):
    assert preprocess_single(np.full((100, 80), level, np.uint8)) is None


def test_faint_noise_only():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(230, 4, (150, 150)), 0, 255).astype(np.uint8)
    assert preprocess_single(paper) is None


@pytest.mark.parametrize("dark_ink", [False, True])
def test_a_small_thin_digit_on_a_large_image_is_found(dark_ink):
    """Ink on under 0.5% of the image (a 37 px 1 with a 4 px pen on the canvas; a small digit
    on a page) is still a digit, though it is outside the image's 0.5-99.5% percentiles."""
    img = np.zeros((280, 280), np.uint8)
    cv2.polylines(img, [np.array([[125, 140], [131, 137], [129, 174]], np.int32)], False, 255, 4, cv2.LINE_AA)
    assert np.count_nonzero(img) < 0.005 * img.size
    if dark_ink:
        img = 255 - img
    st = preprocess_single(img)
    assert st is not None and st.bbox[3] >= 35
    salted = np.full((280, 280), 255, np.uint8)
    salted.flat[np.random.default_rng(1).choice(salted.size, 40, replace=False)] = 0
    assert preprocess_single(salted) is None  # single dark pixels are noise, not small ink


@pytest.mark.parametrize(
    "img",
    [
        draw("5"),  # dark ink on white paper
        255 - draw("5", paper=200),  # a grey background
        canvas([[(0, 100), (140, 100), (140, 250)]]),  # ink reaching the border
        np.full((100, 100), 0, np.uint8),
    ],
)
def test_other_inputs_take_the_general_path(img):
    assert to_ink_detail(img)[2].method != "clean"
