"""Versions are integer folders, published atomically, never overwritten."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from digit_app import model_store


def _stage(model_dir: Path, marker: str) -> Path:
    staged = model_store.staging_dir(model_dir)
    (staged / "saved_model.pb").write_text(marker)
    return staged


def test_empty_store_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(model_store.ModelStoreError, match="training.train"):
        model_store.latest_version(tmp_path / "mnist_cnn")


def test_publish_numbers_versions_and_ignores_incomplete_folders(tmp_path: Path) -> None:
    model_dir = tmp_path / "mnist_cnn"
    assert model_store.publish(_stage(model_dir, "a"), model_dir) == 1
    (model_dir / "7").mkdir()  # an incomplete version (no saved_model.pb) is not served
    (model_dir / ".tmp-abc").mkdir()
    assert model_store.list_versions(model_dir) == [1]
    assert model_store.latest_version(model_dir) == 1
    # ...but its number is never reused, so nothing is written into it
    assert model_store.publish(_stage(model_dir, "b"), model_dir) == 8
    assert (model_dir / "1" / "saved_model.pb").read_text() == "a"


def test_refuses_to_publish_without_savedmodel(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    staged = model_store.staging_dir(model_dir)
    with pytest.raises(model_store.ModelStoreError):
        model_store.publish(staged, model_dir)
    assert model_store.list_versions(model_dir) == []


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    staged = [_stage(model_dir, str(i)) for i in range(16)]
    results: list[int] = []
    lock = threading.Lock()

    def run(s: Path) -> None:
        v = model_store.publish(s, model_dir)
        with lock:
            results.append(v)

    threads = [threading.Thread(target=run, args=(s,)) for s in staged]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 17))
    contents = {(model_dir / str(v) / "saved_model.pb").read_text() for v in results}
    assert contents == {str(i) for i in range(16)}


def test_read_card_of_missing_version(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_store.publish(_stage(model_dir, "x"), model_dir)
    assert model_store.read_card(model_dir, 1) == {}
    with pytest.raises(model_store.ModelStoreError):
        model_store.read_card(model_dir, 3)
