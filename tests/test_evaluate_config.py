"""Metric arithmetic on a hand-checked example, the config's env overrides and CLI flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from digit_app.config import get_settings
from training.config import TrainConfig, add_config_arguments, config_from_args
from training.evaluate import confusion_matrix, metrics_from_confusion


def test_metrics_by_hand() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    m = metrics_from_confusion(cm)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["0"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["0"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["1"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["1"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["1"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["2"]["f1"] == 0.0
    assert m["macro"]["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_settings_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path))
    monkeypatch.setenv("DIGIT_APP_MODEL_NAME", "other")
    monkeypatch.setenv("MNIST_DIR", " ")
    s = get_settings()
    assert s.model_dir == tmp_path / "other"
    assert s.mnist_dir is None


def test_settings_do_not_depend_on_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DIGIT_APP_MODEL_STORE", raising=False)
    before = get_settings().model_store
    monkeypatch.chdir(tmp_path)
    assert get_settings().model_store == before
    assert before.is_absolute()


def test_every_field_is_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    cfg = config_from_args(
        parser.parse_args(["--epochs", "3", "--limit", "100", "--distributed", "--zoom", "0.2"])
    )
    assert cfg == TrainConfig(epochs=3, limit=100, distributed=True, zoom=0.2)
    assert config_from_args(parser.parse_args([])) == TrainConfig()
