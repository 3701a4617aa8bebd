"""Segmentation by recognition: the reading's score, and touching MNIST digits read by the served
model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app.calibration import scale
from digit_app.reading.by_recognition import reading_score
from digit_app.recognize import recognize
from tests.reading.support import side_by_side


def test_a_reading_pays_for_a_shape_unusual_for_its_class():
    nine = np.full(10, 0.01)
    nine[9] = 0.91
    usual = reading_score(nine, 42, 60)  # a 9 is about 0.7 of its height wide
    assert usual == pytest.approx(np.log(0.91))
    assert reading_score(nine, 90, 60) < usual - 1.0  # two digits read as one 9
    one = np.full(10, 0.01)
    one[1] = 0.91
    assert reading_score(one, 18, 60) == pytest.approx(np.log(0.91))  # a 1 may be a bare stroke


def test_segmentation_weighs_the_networks_own_evidence_under_calibration():
    rng = np.random.default_rng(0)
    for _ in range(20):
        raw = rng.dirichlet(np.full(10, 0.3))
        calibrated = scale(raw[None], 0.62)[0]  # what a calibrated SavedModel serves
        for w in (20, 42, 90):
            assert reading_score(calibrated, w, 60, 0.62) == pytest.approx(
                reading_score(raw, w, 60), abs=1e-3
            )


@pytest.mark.parametrize(
    ("first", "overlap"),
    [(f, o) for f in (256, 316, 322) for o in (0.05, 0.1, 0.15)],
)
def test_touching_mnist_digits_are_read_as_two(mnist_dir, first, overlap):
    # MNIST test digits the segmentation used to read as one digit when they touch: cut
    # straight down and charged for every cut, the pair won as one confident reading. Without
    # the one-digit checker, six of seven recent training runs read 2|8 or 9|3 as one 8 at some
    # overlap; with it, all seven read every pair right.
    from digit_app.predictor import served_predictor
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir, progress=False)
    predictor = served_predictor()
    truth = f"{m.y_test[first]}{m.y_test[first + 1]}"
    image = side_by_side(m.x_test[first], m.x_test[first + 1], overlap)
    assert recognize(image, predictor, single=False).digits == truth


@pytest.mark.parametrize("first", [10, 14, 50, 52])
def test_a_dash_touching_the_last_digit_is_left_out(mnist_dir, first):
    # "06-": the dash touches the 6, so it is cut off the 6's group, not dropped on its own as
    # a mark. These MNIST pairs were read with a digit too many (065, 155, 635, 555) until a
    # piece lower than FLAT of the row could be left out of the reading.
    from digit_app.predictor import served_predictor
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir, progress=False)
    truth = f"{m.y_test[first]}{m.y_test[first + 1]}"
    image = np.pad(
        side_by_side(m.x_test[first], m.x_test[first + 1], 0.0), ((0, 0), (0, 40)), constant_values=220
    )
    x_end = np.nonzero(image[45:55] < 150)[1].max()
    cv2.line(image, (int(x_end) - 3, 50), (int(x_end) + 30, 52), 40, 5)
    assert recognize(image, served_predictor(), single=False).digits == truth
