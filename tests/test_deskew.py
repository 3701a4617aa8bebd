"""The Deskew layer: straightens slant, keeps the digit where the pipeline put it, and travels
with the model (SavedModel, TensorFlow Lite twin, the .keras file retraining loads)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from digit_app.reading.normalize import center_in_field, center_of_mass
from tests.conftest import MNIST_ONLY, TINY
from training.config import TrainConfig
from training.data import load_mnist


def _skew(img: np.ndarray) -> float:
    m = cv2.moments(np.asarray(img, np.float64))
    return m["mu11"] / m["mu02"]


def _shear(img: np.ndarray, s: float) -> np.ndarray:
    """x' = x + s * (y - cy): the digit leans by s pixels per row, about its centre of mass."""
    _, cy = center_of_mass(img)
    m = np.float32([[1, s, -s * cy], [0, 1, 0]])
    return cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR)


def _deskew(images: np.ndarray) -> np.ndarray:
    from training.model import Deskew

    return np.asarray(Deskew()(np.asarray(images, np.float32)[..., None]))[..., 0]


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    mnist = load_mnist(mnist_dir)
    return mnist.x_test[:200].astype(np.float32) / 255.0, mnist.y_test[:200]


def test_slanted_digits_come_out_upright_with_their_centre_and_ink(digits) -> None:  # noqa: ANN001
    x, _ = digits
    slanted = np.stack([_shear(img, s) for img, s in zip(x, np.linspace(-0.4, 0.4, len(x)), strict=True)])
    out = _deskew(slanted)
    assert max(abs(_skew(a)) for a in slanted) > 0.3
    assert max(abs(_skew(a)) for a in out) < 0.02
    for before, after in zip(slanted, out, strict=True):
        np.testing.assert_allclose(center_of_mass(after), center_of_mass(before), atol=0.05)
        assert abs(after.sum() - before.sum()) <= 0.02 * before.sum()  # ink leaving the field is rare


def test_matches_opencv_shear_about_the_centre_of_mass(digits) -> None:  # noqa: ANN001
    """An independent implementation: cv2's inverse-mapped affine warp with the same shear."""
    x, _ = digits
    out = _deskew(x[:50])
    for img, got in zip(x[:50], out, strict=True):
        m = cv2.moments(img.astype(np.float64))
        s = float(np.clip(m["mu11"] / m["mu02"], -1.0, 1.0))
        cy = m["m01"] / m["m00"]
        want = cv2.warpAffine(
            img,
            np.float32([[1, s, -s * cy], [0, 1, 0]]),
            (28, 28),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
        )
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_the_same_digit_at_any_slant_gives_nearly_the_same_image(digits) -> None:  # noqa: ANN001
    x, _ = digits
    base = _deskew(x)
    for s in (-0.3, 0.3):
        leaning = _deskew(np.stack([_shear(img, s) for img in x]))
        # Resampling twice blurs a little; the shapes agree.
        assert np.abs(leaning - base).mean() < 0.03


def test_upright_strokes_and_blank_fields_are_left_alone() -> None:
    bar = np.zeros((28, 28), np.float32)
    cv2.line(bar, (14, 4), (14, 23), 1.0, 2)
    bar = center_in_field(bar)
    blank = np.zeros((28, 28), np.float32)
    dash = np.zeros((28, 28), np.float32)
    dash[14, 6:22] = 1.0  # no height: its slant is undefined and must not blow up
    out = _deskew(np.stack([bar, blank, dash]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], bar, atol=1e-5)
    assert not out[1].any()
    np.testing.assert_allclose(out[2], dash, atol=1e-5)


@pytest.mark.slow
def test_a_deskewing_model_trains_exports_and_runs_on_its_twin(tmp_path: Path, mnist_dir: Path) -> None:
    """The whole path with the layer: train, publish, SavedModel, Lite twin, reload for retraining."""
    import tensorflow as tf

    from digit_app import model_store
    from digit_app.predictor import Predictor
    from training.model import load_model
    from training.train import train

    out = tmp_path / "mnist_cnn"
    cfg = TrainConfig(
        data_dir=mnist_dir,
        out=out,
        deskew=True,
        **TINY,
        **MNIST_ONLY,
    )
    card = train(cfg, verbose=0)
    assert card["config"]["deskew"] is True
    x = np.random.default_rng(3).random((20, 28, 28, 1), dtype=np.float32)
    serve = tf.saved_model.load(str(out / "1")).signatures["serving_default"]
    served = serve(image=tf.constant(x))["probabilities"]
    keras_model = load_model(out / "1" / model_store.EXTRA_DIR / "model.keras")
    assert keras_model.get_layer("deskew") is not None
    lite = Predictor.load(out, 1)
    assert lite.runtime == "TensorFlow Lite"  # the twin gave the SavedModel's answers
    np.testing.assert_allclose(lite._digit_model(x), served.numpy(), atol=1e-4)
