"""The one-digit checker: its synthetic pieces, a smoke run of its training, the shipped version,
and how the predictor and segmentation use it (or do without it)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from digit_app import model_store
from digit_app.config import PROJECT_ROOT
from digit_app.model_store import latest_version
from digit_app.predictor import Predictor
from digit_app.reading.normalize import center_of_mass
from training.one_digit import make_pieces

STORE = PROJECT_ROOT / "model_store"


@pytest.fixture(scope="module")
def mnist_test(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir, progress=False)
    return m.x_test, m.y_test


@pytest.fixture(scope="module")
def served() -> Predictor:
    return Predictor.load(STORE / "mnist_cnn")


def test_pieces_are_balanced_and_normalised_like_the_app(mnist_test):
    x, y = make_pieces(mnist_test[0][:300], 40, seed=3)
    assert x.shape == (80, 28, 28) and x.dtype == np.float32
    assert y.tolist() == [1.0] * 40 + [0.0] * 40
    assert x.min() >= 0.0 and x.max() <= 1.0
    for img in x[::7]:  # every piece went through the app's normalisation
        cx, cy = center_of_mass(img)
        assert abs(cx - 13.5) <= 1.0 and abs(cy - 13.5) <= 1.0
    again, _ = make_pieces(mnist_test[0][:300], 40, seed=3)
    assert np.array_equal(x, again)  # seeded


def test_validation_pieces_use_digits_the_training_pieces_do_not(monkeypatch):
    import training.one_digit as od

    digits = np.arange(200, dtype=np.uint8).reshape(200, 1, 1) * np.ones((1, 28, 28), np.uint8)
    used: list[set[int]] = []

    def fake_make_pieces(part: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        used.append({int(d[0, 0]) for d in part})  # which digits each set of pieces may draw from
        return np.zeros((2 * n, 28, 28), np.float32), np.r_[np.ones(n), np.zeros(n)].astype(np.float32)

    monkeypatch.setattr(od, "make_pieces", fake_make_pieces)
    (x, y), (xv, yv) = od.split_pieces(digits, samples=100, seed=0)
    assert used[0].isdisjoint(used[1]) and len(used[0]) == 180 and len(used[1]) == 20
    assert x.shape == (180, 28, 28, 1) and xv.shape == (20, 28, 28, 1)
    assert y.sum() == 90 and yv.sum() == 10


def test_training_smoke_run_publishes_a_checker_the_predictor_loads(tmp_path, monkeypatch, mnist_dir):
    from training.config import OneDigitConfig
    from training.one_digit import train

    store = tmp_path / "store"
    store.mkdir()
    (store / "mnist_cnn").symlink_to(STORE / "mnist_cnn", target_is_directory=True)
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(store))
    card = train(OneDigitConfig(samples=300, epochs=1, data_dir=mnist_dir), verbose=0)
    assert card["version"] == 1
    assert (store / "one_digit" / "1" / "saved_model.pb").is_file()
    assert card["data"]["pieces"] == 600 and card["data"]["mnist_train_images"] > 50_000
    assert 0.0 <= card["validation"]["accuracy"] <= 1.0
    predictor = Predictor.load(store / "mnist_cnn")
    assert predictor.has_checker and predictor.checker_version == 1
    assert predictor.checker_card["data"]["digit_model_version"] == latest_version(STORE / "mnist_cnn")
    p = predictor.one_digit_probability(np.zeros((3, 28, 28), np.float32))
    assert p.shape == (3,) and np.all((p >= 0.0) & (p <= 1.0))
    # Published with its TensorFlow Lite twin, which the predictor runs: the SavedModel's answers.
    assert (model_store.tflite_dir(store / "one_digit", 1) / model_store.TFLITE_FLOAT).is_file()
    assert predictor._checker_lite is not None
    x = np.random.default_rng(2).random((200, 28, 28), dtype=np.float32)
    want = predictor._run(predictor._checker_fn, "one_digit", x, 1)[:, 0]
    np.testing.assert_allclose(predictor.one_digit_probability(x), want, atol=1e-4)
    assert predictor.one_digit_probability(np.zeros((0, 28, 28), np.float32)).shape == (0,)


def test_the_shipped_checker_runs_on_its_twin_and_a_wrong_twin_is_refused(tmp_path, capsys, mnist_test):
    served_store = STORE / "one_digit"
    twin = model_store.tflite_dir(served_store, 1) / model_store.TFLITE_FLOAT
    assert twin.is_file()
    x = mnist_test[0][:300].astype(np.float32) / 255.0
    shipped = Predictor.load(STORE / "mnist_cnn")
    assert shipped._checker_lite is not None
    want = shipped._run(shipped._checker_fn, "one_digit", x, 1)[:, 0]
    np.testing.assert_allclose(shipped.one_digit_probability(x), want, atol=1e-4)

    store = tmp_path / "store"
    store.mkdir()
    (store / "mnist_cnn").symlink_to(STORE / "mnist_cnn", target_is_directory=True)
    (store / "one_digit").symlink_to(served_store, target_is_directory=True)
    wrong = model_store.tflite_dir(store / "one_digit", 1)  # the digit model's twin in the checker's place
    wrong.mkdir(parents=True)
    shutil.copy(
        model_store.tflite_dir(STORE / "mnist_cnn", latest_version(STORE / "mnist_cnn"))
        / model_store.TFLITE_FLOAT,
        wrong,
    )
    capsys.readouterr()
    predictor = Predictor.load(store / "mnist_cnn")
    assert "not used" in capsys.readouterr().out
    assert predictor.has_checker and predictor._checker_lite is None
    np.testing.assert_allclose(predictor.one_digit_probability(x), want, atol=1e-6)


def test_shipped_checker_tells_one_digit_from_touching_digits(served, mnist_test):
    # MNIST test digits: the checker trained on the training split only.
    assert served.has_checker
    x, y = make_pieces(mnist_test[0][:2000], 300, seed=11)
    p = served.one_digit_probability(x)
    assert np.median(p[y == 1]) > 0.9
    assert np.median(p[y == 0]) < 0.1
    assert ((p >= 0.5) == (y == 1)).mean() > 0.9


@pytest.mark.parametrize("kind", ["not a SavedModel", "another model's signature"])
def test_a_broken_checker_is_skipped_not_fatal(tmp_path, kind):
    store = tmp_path / "store"
    store.mkdir()
    (store / "mnist_cnn").symlink_to(STORE / "mnist_cnn", target_is_directory=True)
    broken = store / "one_digit" / "1"
    if kind == "not a SavedModel":
        broken.mkdir(parents=True)
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    else:  # loads, but answers `probabilities` (N, 10), not `one_digit` (N, 1)
        broken.parent.mkdir()
        broken.symlink_to(
            STORE / "mnist_cnn" / str(latest_version(STORE / "mnist_cnn")), target_is_directory=True
        )
    predictor = Predictor.load(store / "mnist_cnn")
    assert predictor.predict_probabilities(np.zeros((1, 28, 28), np.float32)).shape == (1, 10)
    assert not predictor.has_checker
    with pytest.raises(ValueError, match="no one-digit checker"):
        predictor.one_digit_probability(np.zeros((1, 28, 28), np.float32))


def test_segmentation_reads_with_or_without_the_checker(served, mnist_test):
    from digit_app.recognize import recognize
    from tests.reading.support import side_by_side

    x, y = mnist_test
    without = dataclasses.replace(served, _checker_fn=None, _checker_loaded=None, checker_version=None)
    assert not without.has_checker
    for first in (3, 10, 25):
        image = side_by_side(x[first], x[first + 1], 0.0)
        truth = f"{y[first]}{y[first + 1]}"
        assert recognize(image, served, single=False).digits == truth
        assert recognize(image, without, single=False).digits == truth


def test_cli_reports_missing_data_and_publishes_nothing(tmp_path, capsys):
    from training.one_digit import main

    out = tmp_path / "one_digit"
    assert main(["--data-dir", str(tmp_path / "empty"), "--samples", "10", "--out", str(out)]) == 1
    assert "error:" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
