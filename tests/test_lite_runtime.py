"""The Predictor runs a version's TensorFlow Lite twin when the store has one that gives the
SavedModel's answers; otherwise (no twin, a twin of another model, a broken file, or turned
off) it runs the SavedModel. Real models from the repo's store, nothing mocked."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from digit_app import model_store
from digit_app.predictor import Predictor
from tests.store_support import REPO_MODEL_DIR, SERVED_VERSION

SERVED = int(SERVED_VERSION.name)
TWIN = model_store.tflite_dir(REPO_MODEL_DIR, SERVED) / model_store.TFLITE_FLOAT


@pytest.fixture(scope="module")
def images(mnist_dir: Path) -> np.ndarray:
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir, progress=False)
    return m.x_test[:600].astype(np.float32)[..., None] / 255.0


@pytest.fixture(scope="module")
def lite() -> Predictor:
    return Predictor.load(REPO_MODEL_DIR, SERVED)


@pytest.fixture(scope="module")
def saved(monkeypatch_module: pytest.MonkeyPatch) -> Predictor:
    monkeypatch_module.setenv("DIGIT_APP_TFLITE", "0")
    predictor = Predictor.load(REPO_MODEL_DIR, SERVED)
    monkeypatch_module.delenv("DIGIT_APP_TFLITE")
    return predictor


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _store_with(tmp_path: Path, twin: bytes | None, network: Path = SERVED_VERSION) -> Path:
    """A store holding `network` (a version's folder; default the served one) as version 1, with
    `twin` beside it."""
    model_dir = tmp_path / "mnist_cnn"
    shutil.copytree(network, model_dir / "1")
    if twin is not None:
        out = model_store.tflite_dir(model_dir, 1)
        out.mkdir(parents=True)
        (out / model_store.TFLITE_FLOAT).write_bytes(twin)
    return model_dir


@pytest.fixture(scope="module")
def other_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version folder holding another network of the same design (untrained, small)."""
    from training.config import TrainConfig
    from training.export import write_savedmodel
    from training.model import build_model

    path = tmp_path_factory.mktemp("other") / "1"
    write_savedmodel(build_model(TrainConfig(width=8, dense_units=16)), path)
    return path


def test_the_served_version_has_a_twin_and_runs_on_it(lite: Predictor, saved: Predictor) -> None:
    assert TWIN.is_file()
    assert lite.runtime == "TensorFlow Lite"
    assert saved.runtime == "SavedModel"


@pytest.mark.parametrize("n", [1, 128, 129, 256, 600])  # one by one, padded chunks of 256, both
def test_the_twin_gives_the_savedmodels_answers(lite, saved, images, n: int) -> None:
    got, want = lite.predict_probabilities(images[:n]), saved.predict_probabilities(images[:n])
    assert got.shape == want.shape == (n, 10)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_no_images_and_wrong_shapes(lite: Predictor) -> None:
    assert lite.predict_probabilities(np.zeros((0, 28, 28, 1), np.float32)).shape == (0, 10)
    assert lite.predict_probabilities(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="28, 28, 1"):
        lite.predict_probabilities(np.zeros((2, 27, 28, 1), np.float32))


def test_threads_sharing_the_twin_get_their_own_answers(lite: Predictor, images: np.ndarray) -> None:
    # Drawings (1-20 images, one by one) and uploads (300, in chunks) at the same time.
    sizes = [300 if i % 8 == 0 else 1 + i % 20 for i in range(40)]
    want = [lite.predict_probabilities(images[i : i + n]) for i, n in enumerate(sizes)]
    got: list[np.ndarray | None] = [None] * 40

    def work(i: int) -> None:
        got[i] = lite.predict_probabilities(images[i : i + sizes[i]])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize(
    "twin, reason",
    [(TWIN.read_bytes(), "differ from the SavedModel"), (b"not a flatbuffer", "")],
    ids=["another model's twin", "a broken file"],
)
def test_a_twin_that_does_not_match_is_refused(
    tmp_path, images, capsys, other_network: Path, twin: bytes, reason: str
) -> None:
    model_dir = _store_with(tmp_path, twin, other_network)  # another network, the served twin
    predictor = Predictor.load(model_dir, 1)
    assert predictor.runtime == "SavedModel"
    out = capsys.readouterr().out
    assert "TensorFlow Lite twin" in out and "not used" in out and reason in out
    assert predictor.predict_probabilities(images[:5]).shape == (5, 10)


def test_without_a_twin_or_when_turned_off_the_savedmodel_runs(tmp_path, monkeypatch) -> None:
    assert Predictor.load(_store_with(tmp_path / "a", None), 1).runtime == "SavedModel"
    monkeypatch.setenv("DIGIT_APP_TFLITE", "off")
    assert Predictor.load(REPO_MODEL_DIR, SERVED).runtime == "SavedModel"


def test_a_rollback_keeps_the_twin(tmp_path: Path) -> None:
    model_dir = _store_with(tmp_path, TWIN.read_bytes())
    new = model_store.republish(model_dir, 1)
    assert new == 2
    assert (model_store.tflite_dir(model_dir, 2) / model_store.TFLITE_FLOAT).read_bytes() == TWIN.read_bytes()
    assert Predictor.load(model_dir, 2).runtime == "TensorFlow Lite"
