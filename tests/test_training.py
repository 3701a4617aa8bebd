"""The whole training path on a tiny subset, the SavedModel contract, and the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_app import model_store
from digit_app.config import PROJECT_ROOT, get_settings
from digit_app.predictor import Predictor
from tests.conftest import TINY
from tests.handwriting import handwriting_dir
from training.config import TrainConfig
from training.data import load_mnist
from training.handwriting import TRAIN_SETS


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """A model folder with one version trained for one epoch on 256 images."""
    from training.train import train

    out = tmp_path_factory.mktemp("store") / "mnist_cnn"
    card = train(
        TrainConfig(data_dir=mnist_dir, handwriting_dir=handwriting_dir(), out=out, **TINY), verbose=0
    )
    assert card["version"] == 1
    return out


def test_smoke_run_publishes_integer_version_without_leftovers(trained_store: Path) -> None:
    assert model_store.list_versions(trained_store) == [1]
    assert [p.name for p in trained_store.iterdir()] == ["1"]  # no .tmp- staging folder left behind
    extra = trained_store / "1" / "assets.extra"
    for name in (
        "card.json",
        "model.keras",
        "confusion_matrix.png",
        "worst_errors.png",
        "training_curves.png",
    ):
        assert (extra / name).is_file(), name


def test_a_new_version_comes_with_its_tflite_twin_and_runs_on_it(trained_store: Path) -> None:
    twin = model_store.tflite_dir(trained_store, 1) / model_store.TFLITE_FLOAT
    assert twin.is_file() and not list(twin.parent.glob(".tmp-*"))
    lite = Predictor.load(trained_store, 1)
    assert lite.runtime == "TensorFlow Lite"  # it passed the check against the SavedModel
    x = np.random.default_rng(1).random((40, 28, 28, 1), dtype=np.float32)
    want = lite._run(lite._fn, "probabilities", x, 10)
    np.testing.assert_allclose(lite._digit_model(x), want, atol=1e-4)


def test_signature_contract(trained_store: Path) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(trained_store / "1"))
    fn = loaded.signatures["serving_default"]
    _args, kwargs = fn.structured_input_signature
    assert list(kwargs) == ["image"]
    assert kwargs["image"].shape.as_list() == [None, 28, 28, 1]
    assert kwargs["image"].dtype == tf.float32
    assert list(fn.structured_outputs) == ["probabilities"]
    out = fn(image=tf.random.uniform([5, 28, 28, 1]))["probabilities"]
    assert out.dtype == tf.float32 and out.shape == (5, 10)
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, atol=1e-5)


def test_card_records_config_data_metrics_and_commit(trained_store: Path) -> None:
    card = model_store.read_card(trained_store, 1)
    assert card["config"]["epochs"] == 1 and card["config"]["limit"] == 256
    assert card["data"]["counts"]["train"] == 256
    assert set(card["data"]["sha256"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    assert card["git_commit"]
    test = card["test"]
    assert 0.0 <= test["accuracy"] <= 1.0
    assert np.array(test["confusion_matrix"]).sum() == card["data"]["counts"]["test"]
    assert set(test["per_class"]) == {str(d) for d in range(10)}
    assert card["validation"]["best_epoch"] == 1


def test_card_names_every_real_set_it_learned_from(trained_store: Path) -> None:
    card = model_store.read_card(trained_store, 1)
    sets = card["data"]["handwriting"]
    assert set(sets) == set(TRAIN_SETS) and card["data"]["missing"] == {}
    for name, entry in sets.items():
        assert entry["train_samples"] > 0 and entry["licence"] and entry["citation"], name
        assert entry["files"] and all(len(digest) == 64 for digest in entry["files"].values()), name
        assert not any("windep" in f or "0006" in f or "0007" in f for f in entry["files"]), "dev files"
    assert set(card["data"]["shares"]) == {"mnist", *TRAIN_SETS}
    assert abs(sum(card["data"]["shares"].values()) - 1.0) < 1e-9
    by_source = card["validation"]["by_source"]
    assert "mnist" in by_source and set(by_source) <= {"mnist", *TRAIN_SETS}
    assert card["data"]["counts"]["real_val"] > 0, "validation writers of the pen sets"


def test_second_run_becomes_next_version(trained_store: Path, mnist_dir: Path) -> None:
    from training.train import train

    cfg = TrainConfig(data_dir=mnist_dir, handwriting_dir=handwriting_dir(), out=trained_store, **TINY)
    card = train(cfg, verbose=0)
    assert card["version"] == 2
    assert model_store.latest_version(trained_store) == 2
    assert Predictor.load(trained_store).version == 2


@pytest.mark.parametrize("module", ["training.train", "training.retrain", "training.strings"])
def test_cli_help_lists_every_config_field(module: str) -> None:
    """Every trainer's --help prints (help texts may hold a "%") and names each config field."""
    import dataclasses

    from digit_app.config import RetrainConfig
    from training.config import StringConfig

    config = {
        "training.train": TrainConfig,
        "training.retrain": RetrainConfig,
        "training.strings": StringConfig,
    }
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for f in dataclasses.fields(config[module]):
        assert "--" + f.name.replace("_", "-") in out.stdout


def test_cli_reports_bad_data_dir_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "training.train", "--data-dir", str(tmp_path), "--epochs", "1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "missing" in out.stderr and "Traceback" not in out.stderr


def test_shipped_model_classifies_fixed_test_digits(mnist_dir: Path) -> None:
    """The committed version loads and gets the first 100 MNIST test digits right."""
    settings = get_settings()
    predictor = Predictor.load(settings.model_dir)
    card = predictor.card
    assert card["test"]["accuracy"] >= 0.995
    mnist = load_mnist(mnist_dir)
    x = mnist.x_test[:100].astype(np.float32)[..., None] / 255.0
    preds = predictor.predict(x)
    labels = np.array([p.label for p in preds])
    assert (labels == mnist.y_test[:100]).mean() >= 0.99
    assert all(abs(sum(p.probabilities) - 1.0) < 1e-4 for p in preds)


def test_shipped_model_card_is_complete() -> None:
    model_dir = get_settings().model_dir
    version = model_store.latest_version(model_dir)
    card = json.loads((model_dir / str(version) / "assets.extra" / "card.json").read_text())
    assert card["config"]["limit"] is None, "the shipped model must be trained on the full data"
    counts = card["data"]["counts"]
    assert counts["train"] + counts["val"] == 60000 and abs(counts["val"] - 6000) <= 10
    assert counts["test"] == 10000
    assert len(card["history"]["val_accuracy"]) == card["config"]["epochs"]
