"""Normalisation: the MNIST geometry (20-px box, centre of mass in 28x28) and its invariances."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.reading.normalize import center_of_mass, normalize_digit, scale_to_box
from digit_app.reading.pipeline import preprocess_single
from digit_app.reading.types import BOX, CENTER, SIZE
from tests.reading.support import FONT, draw, final, similarity


@pytest.mark.parametrize("text", ["0", "1", "4", "7"])
def test_centre_of_mass_and_box(text):
    st = preprocess_single(draw(text))
    assert st.final.shape == (SIZE, SIZE) and st.final.dtype == np.float32
    assert st.final.min() >= 0.0 and st.final.max() <= 1.0 and st.final.max() > 0.9
    cx, cy = center_of_mass(st.final)
    assert abs(cx - CENTER) < 0.05 and abs(cy - CENTER) < 0.05  # MNIST: the centre of pixel (14, 14)
    assert max(st.box20.shape) == BOX
    ys, xs = np.nonzero(st.final > 0.05)
    # The sub-pixel shift may spread a 20-px box over one more pixel, never more.
    assert ys.max() - ys.min() + 1 <= BOX + 1 and xs.max() - xs.min() + 1 <= BOX + 1


def test_aspect_ratio_kept_for_a_thin_one():
    img = np.zeros((120, 120), np.uint8)
    img[10:110, 59:61] = 255  # a "1" two pixels wide
    st = preprocess_single(img)
    assert st is not None
    assert st.box20.shape[0] == BOX and st.box20.shape[1] <= 2
    cols = np.flatnonzero(st.final.max(axis=0) > 0.05)
    assert len(cols) <= 3


def test_normalize_digit_directly():
    ink = np.zeros((60, 40), np.uint8)
    cv2.circle(ink, (20, 30), 15, 255, 4)
    out = normalize_digit(ink)
    assert out.shape == (SIZE, SIZE)
    cx, cy = center_of_mass(out)
    assert abs(cx - CENTER) < 0.5 and abs(cy - CENTER) < 0.5
    with pytest.raises(ValueError):
        normalize_digit(np.zeros((10, 10), np.uint8))


def test_small_input_is_enlarged_smoothly():
    small = np.zeros((16, 16), np.uint8)  # semeion-sized binary bitmap
    small[2:14, 7:10] = 255
    small[2:5, 4:10] = 255
    st = preprocess_single(small)
    assert st is not None and max(st.box20.shape) == BOX
    assert len(np.unique(np.round(st.final, 2))) > 5  # grey edges, not blocky


def test_mnist_sized_input_is_nearly_unchanged():
    img = np.zeros((SIZE, SIZE), np.uint8)
    cv2.putText(img, "3", (6, 24), FONT, 0.8, 255, 2, cv2.LINE_AA)
    first = final(img)
    again = final((first * 255).astype(np.uint8))
    assert similarity(first, again) > 0.97


def test_translation_invariance():
    a = final(draw("2", size=(300, 300), org=(30, 160)))
    b = final(draw("2", size=(300, 300), org=(140, 270)))
    assert np.abs(a - b).mean() < 0.02 and similarity(a, b) > 0.98


def test_scale_invariance():
    a = final(draw("3", size=(400, 400), org=(60, 330), scale=10.0, thickness=28))
    b = final(draw("3", size=(100, 100), org=(15, 82), scale=2.5, thickness=7))
    assert similarity(a, b) > 0.93


def test_stroke_width_roughly_invariant():
    a = final(draw("6", thickness=8))
    b = final(draw("6", thickness=20))
    assert similarity(a, b) > 0.8


def test_scale_to_box_is_area_averaging_as_opencv_does_it():
    rng = np.random.default_rng(3)
    for h, w in [(223, 143), (100, 100), (57, 31), (21, 400), (40, 20)]:
        crop = rng.integers(0, 256, (h, w)).astype(np.uint8)
        s = BOX / max(h, w)
        reference = cv2.resize(
            crop.astype(np.float32),
            (max(1, round(w * s)), max(1, round(h * s))),
            interpolation=cv2.INTER_AREA,
        )
        got = scale_to_box(crop)
        assert got.shape == reference.shape
        assert np.abs(got - reference / reference.max()).max() < 1e-5


def test_centre_of_mass_of_thin_images():
    rng = np.random.default_rng(5)
    for shape in [(20, 2), (20, 1), (2, 20), (13, 9)]:  # (N, 2) is never taken for a list of points
        img = rng.random(shape).astype(np.float32)
        ys, xs = np.indices(shape)
        expected = ((img * xs).sum() / img.sum(), (img * ys).sum() / img.sum())
        assert np.allclose(center_of_mass(img), expected, atol=1e-6)
