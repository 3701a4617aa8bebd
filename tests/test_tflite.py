"""TensorFlow Lite export of a real model version: both files, their accuracy, the versions untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.store_support import SERVED_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_export_float_and_int8_beside_the_version(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    shutil.copytree(SERVED_VERSION, store / "mnist_cnn" / "1")
    before = sorted(p.relative_to(store) for p in (store / "mnist_cnn").rglob("*"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(store))
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    from training.export_tflite import main

    assert main(["--calibration", "200"]) == 0
    out = store / "mnist_cnn-tflite" / "1"
    report = json.loads((out / "report.json").read_text())
    assert (out / "model_float.tflite").stat().st_size == report["float"]["bytes"]
    assert report["int8"]["bytes"] < report["float"]["bytes"] / 2
    assert report["float"]["test_accuracy"] == pytest.approx(report["savedmodel_test_accuracy"], abs=0.0005)
    assert report["int8"]["test_accuracy"] >= report["savedmodel_test_accuracy"] - 0.002
    after = sorted(p.relative_to(store) for p in (store / "mnist_cnn").rglob("*"))
    assert after == before  # the version itself is never touched


def test_export_reports_a_missing_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path))
    from training.export_tflite import main

    assert main(["--version", "7"]) == 1
    assert "version" in capsys.readouterr().err
