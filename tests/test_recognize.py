"""`recognize` and `recognize_batch`: one model call per image or chunk, with a stand-in for the
model (and the real one where the order of answers matters)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digit_app import recognize as rec
from digit_app.imageio import canvas_to_gray
from digit_app.reading.types import SIZE
from digit_app.recognize import _to_gray, crops_for, recognize, recognize_batch, results_for
from tests.reading.support import CLEAN_CANVASES, FONT, FakePredictor, draw


def test_recognize_single_multi_and_nothing():
    fake = FakePredictor()
    res = recognize(draw("5"), fake, single=True)
    assert res.digits == "7" and abs(res.confidence - 0.9) < 1e-6 and res.message is None
    assert fake.calls == 1 and res.detail[0].image28.shape == (SIZE, SIZE)

    fake = FakePredictor()
    res = recognize(draw("2026", size=(140, 420), org=(20, 110), scale=3.5, thickness=10), fake, single=False)
    assert res.digits == "7777" and len(res.detail) == 4
    assert fake.calls <= 2  # at most one batch to choose splits, one for the digits

    res = recognize(np.full((100, 100), 255, np.uint8), FakePredictor(), single=True)
    assert res.digits == "" and res.message and not res.found

    unsure = recognize(draw("5"), FakePredictor(0.3), single=True)
    assert unsure.digits == "?" and unsure.detail[0].unsure and unsure.message


def test_recognize_accepts_the_canvas_rgba():
    rgba = np.zeros((280, 280, 4), np.uint8)
    cv2.putText(rgba, "3", (70, 230), FONT, 7.0, (255, 255, 255, 255), 18, cv2.LINE_AA)
    assert recognize(rgba, FakePredictor(), single=True).digits == "7"


def test_the_canvas_rgba_shortcut_matches_canvas_to_gray():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = 255
    cv2.putText(rgba, "8", (70, 230), FONT, 7.0, (255, 255, 255, 255), 18, cv2.LINE_AA)
    assert np.array_equal(_to_gray(rgba), canvas_to_gray(rgba))
    white = np.full((280, 280, 4), 255, np.uint8)  # dark strokes on a white canvas
    cv2.putText(white, "8", (70, 230), FONT, 7.0, (0, 0, 0, 255), 18, cv2.LINE_AA)
    assert np.array_equal(_to_gray(white), canvas_to_gray(white))
    colour = rgba.copy()
    colour[..., 1] //= 2  # coloured strokes: the luma, as canvas_to_gray computes it
    assert np.array_equal(_to_gray(colour), canvas_to_gray(colour))


def test_multi_mode_reuses_the_segmentation_scores():
    img = draw("2026", size=(140, 420), org=(20, 110), scale=3.5, thickness=10)
    fake = FakePredictor()
    res = recognize(img, fake, single=False)
    assert res.digits == "7777" and fake.calls == 1  # the scores of segmentation are the answer
    other = FakePredictor(0.8)
    again = results_for(crops_for(img, False, fake), other)  # another model: asked afresh
    assert other.calls == 1 and abs(again.detail[0].confidence - 0.8) < 1e-6


def test_recognize_batch_is_one_call_and_matches_recognize():
    images = [draw("5"), np.full((100, 100), 255, np.uint8), CLEAN_CANVASES["two"], draw("3")]
    fake = FakePredictor()
    results = recognize_batch(images, fake)
    assert fake.calls == 1 and [r.digits for r in results] == ["7", "", "7", "7"]
    for img, r in zip(images, results):
        one = recognize(img, FakePredictor())
        assert one.digits == r.digits and [d.box for d in one.detail] == [d.box for d in r.detail]
        assert all(d.stages is None for d in r.detail)  # not kept by default in a batch


def test_recognize_batch_in_chunks(monkeypatch):
    monkeypatch.setattr(rec, "BATCH_CHUNK", 2)  # several chunks, results in order
    images = [CLEAN_CANVASES["two"], np.full((100, 100), 255, np.uint8), draw("3"), draw("5"), draw("1")]
    fake = FakePredictor()
    results = rec.recognize_batch(images, fake)
    assert fake.calls == 3 and [r.digits for r in results] == ["7", "", "7", "7", "7"]
    multi = rec.recognize_batch(
        [draw("2026", size=(140, 420), org=(20, 110), scale=3.5, thickness=10)] * 3, fake, single=False
    )
    assert [r.digits for r in multi] == ["7777"] * 3


def test_recognize_batch_overlapped_chunks_keep_each_image_its_own_result(monkeypatch, mnist_dir):
    """Chunks are read by the model in a worker thread while the next is prepared: with the
    real model and ten different digits, every image still gets its own answer, in order."""
    from digit_app.predictor import served_predictor
    from training.data import load_mnist

    mnist = load_mnist(mnist_dir)
    picks = [i for d in range(10) for i in np.flatnonzero(mnist.y_test == d)[:3]]
    images = [mnist.x_test[i] for i in np.random.default_rng(0).permutation(picks)] + [
        np.zeros((28, 28), np.uint8)
    ]
    predictor = served_predictor()
    one_by_one = [rec.recognize(img, predictor) for img in images]
    monkeypatch.setattr(rec, "BATCH_CHUNK", 3)
    batch = rec.recognize_batch(images, predictor)
    assert [r.digits for r in batch] == [r.digits for r in one_by_one]
    assert len(set(r.digits for r in batch)) == 11  # ten digits and "" for the blank
    for a, b in zip(batch, one_by_one):
        assert [d.box for d in a.detail] == [d.box for d in b.detail]
        np.testing.assert_allclose(
            [d.probabilities for d in a.detail], [d.probabilities for d in b.detail], atol=1e-5
        )


def test_recognize_batch_raises_the_model_error_of_any_chunk(monkeypatch):
    class Failing(FakePredictor):
        def predict_probabilities(self, images: np.ndarray) -> np.ndarray:
            if self.calls == 1:
                raise RuntimeError("model broke on chunk 2")
            return super().predict_probabilities(images)

    monkeypatch.setattr(rec, "BATCH_CHUNK", 2)
    with pytest.raises(RuntimeError, match="chunk 2"):
        rec.recognize_batch([draw("3")] * 6, Failing())
