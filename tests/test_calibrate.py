"""Temperature scaling: fitted right, applied inside the SavedModel, never changing an answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_app import model_store
from digit_app.config import PROJECT_ROOT
from digit_app.predictor import Predictor
from tests.conftest import MNIST_ONLY, TINY
from training.calibrate import calibration_error, fit_temperature, nll, scale


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample(rng: np.random.Generator, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """True class probabilities and labels drawn from them."""
    true = _softmax(rng.normal(0.0, 2.5, (n, 10)))
    labels = np.array([rng.choice(10, p=p) for p in true])
    return true, labels


def test_fit_recovers_the_temperature_that_undoes_over_and_under_confidence():
    rng = np.random.default_rng(0)
    true, labels = _sample(rng)
    logits = np.log(true)
    for sharpness in (0.6, 1.0, 1.8):  # the model's logits are the true ones times this
        model = _softmax(logits * sharpness)
        t = fit_temperature(model, labels)
        assert t == pytest.approx(sharpness, rel=0.06)
        assert nll(model, labels, t) <= nll(model, labels) + 1e-9
        assert calibration_error(scale(model, t), labels) < 0.02


def test_scaling_keeps_every_answer_and_sums_to_one():
    rng = np.random.default_rng(1)
    probs = _softmax(rng.normal(0, 3, (500, 10)))
    for t in (0.3, 0.625, 1.0, 4.0):
        out = scale(probs, t)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
        assert np.array_equal(out.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(scale(probs, 1.0), probs, atol=1e-9)
    assert (scale(probs, 0.5).max(axis=1) >= probs.max(axis=1) - 1e-12).all()  # T < 1 sharpens


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("store") / "mnist_cnn"
    train(
        TrainConfig(
            data_dir=mnist_dir,
            out=out,
            **TINY,
            **MNIST_ONLY,
        ),
        0,
    )
    return out


def test_training_fits_a_temperature_and_serves_with_it(tiny_store: Path, mnist_dir: Path) -> None:
    import keras

    from training.data import load_mnist

    card = model_store.read_card(tiny_store, 1)
    cal = card["calibration"]
    assert cal["fitted_on"] == "validation split: mnist" and cal["n"] == card["data"]["counts"]["val"]
    assert cal["nll_after"] <= cal["nll_before"]
    # The SavedModel serves the keras model's probabilities scaled by that temperature.
    x = load_mnist(mnist_dir).x_test[:64].astype(np.float32)[..., None] / 255.0
    raw = keras.models.load_model(tiny_store / "1" / "assets.extra" / "model.keras", compile=False).predict(
        x, verbose=0
    )
    predictor = Predictor.load(tiny_store, 1)
    assert predictor.temperature == cal["temperature"]
    served = predictor.predict_probabilities(x)
    np.testing.assert_allclose(served, scale(raw, cal["temperature"]), atol=2e-5)


def test_calibrate_cli_publishes_a_calibrated_copy_of_an_uncalibrated_version(
    tiny_store: Path, mnist_dir: Path
) -> None:
    import json

    # Make version 1's card look like one from before calibration existed.
    card_path = tiny_store / "1" / "assets.extra" / "card.json"
    old = json.loads(card_path.read_text())
    old.pop("calibration")
    card_path.write_text(json.dumps(old))

    def run(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "training.calibrate", "--model-dir", str(tiny_store)]
        command += ["--data-dir", str(mnist_dir), *extra]
        return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)

    proc = run("--version", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert model_store.list_versions(tiny_store) == [1, 2]
    new = model_store.read_card(tiny_store, 2)
    assert new["derived_from"]["version"] == 1 and new["config"] == old["config"]
    assert new["calibration"]["temperature"] > 0 and new["test"]["accuracy"] == old["test"]["accuracy"]
    assert "published" in proc.stdout
    again = run("--version", "2")  # versions are not calibrated twice
    assert again.returncode != 0 and "already calibrated" in again.stderr
    assert model_store.list_versions(tiny_store) == [1, 2]


def test_calibrate_help_documents_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "training.calibrate", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    for flag in ("--version", "--model-dir", "--data-dir"):
        assert flag in out.stdout
