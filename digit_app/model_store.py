"""The versioned model store, laid out the way TensorFlow Serving reads it.

    <model_store>/<model_name>/<N>/saved_model.pb      (N = 1, 2, 3, ...)
    <model_store>/<model_name>/<N>/assets.extra/card.json

The served version is the highest number. A version is written to a hidden temporary
folder beside the others and renamed into place, so readers (the app, TF Serving) never
see a half-written version; versions are never edited afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

CARD_NAME = "card.json"
EXTRA_DIR = "assets.extra"


class ModelStoreError(RuntimeError):
    """The store is empty, or a version is missing or incomplete."""


def list_versions(model_dir: Path) -> list[int]:
    """Complete versions (integer folders holding a saved_model.pb), ascending."""
    if not model_dir.is_dir():
        return []
    versions = []
    for child in model_dir.iterdir():
        if child.name.isdigit() and (child / "saved_model.pb").is_file():
            versions.append(int(child.name))
    return sorted(versions)


def latest_version(model_dir: Path) -> int:
    """The version TF Serving and the app serve: the highest complete one."""
    versions = list_versions(model_dir)
    if not versions:
        raise ModelStoreError(f"no model version in {model_dir}; train one with `python -m training.train`")
    return versions[-1]


def version_dir(model_dir: Path, version: int | None = None) -> Path:
    """Folder of a version (the served one when version is None)."""
    version = latest_version(model_dir) if version is None else version
    path = model_dir / str(version)
    if not (path / "saved_model.pb").is_file():
        raise ModelStoreError(f"model version {version} not found in {model_dir}")
    return path


# A version's float TensorFlow Lite twin (`python -m training.export_tflite`), which the
# Predictor runs instead of the SavedModel when it is there and gives the same answers.
TFLITE_FLOAT = "model_float.tflite"


def tflite_dir(model_dir: Path, version: int) -> Path:
    """Where a version's TensorFlow Lite files live: beside the numbered folders, never in one
    (a published version is never edited, and TensorFlow Serving reads only those folders)."""
    return model_dir.parent / f"{model_dir.name}-tflite" / str(version)


def write_tflite(model_dir: Path, version: int, data: bytes, name: str = TFLITE_FLOAT) -> Path:
    """Write one of a version's TensorFlow Lite files, atomically (a reader never sees half of it)."""
    out = tflite_dir(model_dir, version)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{name}"
    tmp.write_bytes(data)
    os.replace(tmp, out / name)
    return out / name


def read_card(model_dir: Path, version: int | None = None) -> dict[str, Any]:
    """The model card of a version ({} when it has none)."""
    path = version_dir(model_dir, version) / EXTRA_DIR / CARD_NAME
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def card_temperature(card: dict[str, Any]) -> float:
    """The temperature a version's probabilities are calibrated with (1.0: not calibrated)."""
    return float(card.get("calibration", {}).get("temperature", 1.0))


def staging_dir(model_dir: Path) -> Path:
    """A fresh hidden folder beside the versions, to build a version in before publishing."""
    model_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=model_dir, prefix=".tmp-"))


def publish(staged: Path, model_dir: Path) -> int:
    """Rename a staged version into the next free number; safe against concurrent publishers."""
    if not (staged / "saved_model.pb").is_file():
        raise ModelStoreError(f"{staged} holds no SavedModel; refusing to publish it")
    _fsync_tree(staged)
    while True:
        existing = (
            [int(c.name) for c in model_dir.iterdir() if c.name.isdigit()] if model_dir.is_dir() else []
        )
        version = max(existing, default=0) + 1
        target = model_dir / str(version)
        try:
            # os.rename of a directory onto a missing path is atomic; if another publisher
            # took this number first the target exists (non-empty) and we try the next one.
            os.rename(staged, target)
        except OSError:
            if target.exists():
                continue
            raise
        return version


def republish(model_dir: Path, version: int, reason: str = "rollback") -> int:
    """Publish a copy of an earlier version as the next number (a rollback).

    Versions are never edited or deleted, so the app and TensorFlow Serving, which both
    serve the highest number, switch to the old model simply because it is now the newest.
    """
    source = version_dir(model_dir, version)
    staged = staging_dir(model_dir)
    try:
        shutil.copytree(source, staged, dirs_exist_ok=True)
        card_path = staged / EXTRA_DIR / CARD_NAME
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        card["republished_from"] = version
        card["republish_reason"] = reason
        card["created"] = _now()
        card_path.parent.mkdir(parents=True, exist_ok=True)
        card_path.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
        new = publish(staged, model_dir)
    except BaseException:
        discard(staged)
        raise
    # The copy keeps its fast twin (same network); a failure leaves it on its SavedModel.
    twin = tflite_dir(model_dir, version) / TFLITE_FLOAT
    try:
        if twin.is_file():
            write_tflite(model_dir, new, twin.read_bytes())
    except OSError as exc:
        print(f"warning: version {new} published without its TensorFlow Lite twin: {exc}", flush=True)
    return new


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def discard(staged: Path) -> None:
    """Remove a staged folder that will not be published."""
    shutil.rmtree(staged, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Flush a staged version to disk before it becomes visible, so a crash cannot expose it half-written."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
