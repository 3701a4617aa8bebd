"""The predictor's second look at a 7 whose runner-up is 1: flagged 1s drawn by real people are
read as 1, real 7s keep their label, and nothing else changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from digit_app.config import PROJECT_ROOT
from digit_app.predictor import Predictor
from digit_app.reading.pipeline import preprocess_single
from digit_app.strokes import render_strokes
from tests.handwriting import pendigits, strokes_on_canvas

STORE = PROJECT_ROOT / "model_store" / "mnist_cnn"


@pytest.fixture(scope="module")
def served() -> Predictor:
    return Predictor.load(STORE)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir, progress=False)
    return m.x_test.astype(np.float32)[..., None] / 255.0, m.y_test


def _without(predictor: Predictor) -> Predictor:
    return dataclasses.replace(predictor, second_look_degrees=0.0)


def test_second_look_is_on_by_default_and_off_at_zero_degrees(served, monkeypatch, mnist_test):
    assert served.second_look_degrees == 8.0 and served.second_look_min == 0.9
    x = mnist_test[0][:300]
    raw = served._digit_model(x)  # the network alone (its Lite twin when the store has one)
    np.testing.assert_array_equal(_without(served).predict_probabilities(x), raw)
    monkeypatch.setenv("DIGIT_APP_SECOND_LOOK_DEGREES", "0")
    assert Predictor.load(STORE).second_look_degrees == 0.0


def test_only_sevens_with_runner_up_one_change_and_few_mnist_sevens_are_lost(served, mnist_test):
    x, y = mnist_test
    before = _without(served).predict_probabilities(x)
    after = served.predict_probabilities(x)
    changed = np.flatnonzero(np.any(before != after, axis=1))
    order = np.argsort(-before, axis=1)
    assert len(changed) > 0
    assert np.all(order[changed, 0] == 7) and np.all(order[changed, 1] == 1)
    assert np.all(after[changed].argmax(axis=1) == 1) and np.all(after[changed, 1] >= 0.9)
    lost = int(np.sum((before.argmax(1) == y) & (after.argmax(1) != y)))
    gained = int(np.sum((before.argmax(1) != y) & (after.argmax(1) == y)))
    # The measured cost (BENCHMARKS.md): a few thin MNIST 7s with short bars, out of 1,028.
    assert lost - gained <= 3, (lost, gained)


def test_flagged_ones_drawn_on_the_canvas_are_read_as_one(served):
    """Real drawings (pendigits) of 1 and 7 as the Draw page renders them."""
    images, labels = [], []
    for sample in pendigits():
        if sample["label"] not in (1, 7):
            continue
        strokes = [np.array(s, np.float64) for s in strokes_on_canvas(sample)]
        st = preprocess_single(render_strokes(strokes, (280, 280)))
        if st is not None:
            images.append(st.final)
            labels.append(sample["label"])
    x, y = np.stack(images).astype(np.float32), np.array(labels)
    before = _without(served).predict_probabilities(x).argmax(axis=1)
    after = served.predict_probabilities(x).argmax(axis=1)
    ones_fixed = int(np.sum((y == 1) & (before == 7) & (after == 1)))
    sevens_lost = int(np.sum((y == 7) & (before == 7) & (after != 7)))
    assert ones_fixed >= 10, ones_fixed  # 19 of the 37 1s read as 7 by version 6
    assert sevens_lost <= 1, sevens_lost  # none with version 6
