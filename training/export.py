"""Write a trained Keras model as a TensorFlow Serving-ready SavedModel version."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from digit_app import model_store
from digit_app.config import PROJECT_ROOT
from digit_app.model_store import CARD_NAME, EXTRA_DIR

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
KERAS_FILE = "model.keras"


def git_commit() -> str:
    """The commit of the code that made a version (with -dirty when the tree had changes), for its
    card: training, retraining, calibration and the one-digit checker record it alike."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_savedmodel(
    model: keras.Model,
    path: Path,
    temperature: float = 1.0,
    output_name: str = OUTPUT_NAME,
    input_name: str = INPUT_NAME,
    input_shape: tuple[int | None, ...] = (28, 28, 1),
    batch: int | None = None,
) -> None:
    """SavedModel whose `serving_default` maps image [None,28,28,1] f32 -> probabilities [None,10] f32
    (or, under another `output_name`, whatever the model outputs: the one-digit checker's [None,1];
    the pen model reads `strokes` [None,64,5] instead of images; the string reader rows of any
    width [None,32,None,1]). `batch` fixes the batch dimension (a Lite twin's conversion).

    With a temperature (`training.calibrate`), the model's probabilities are raised to 1/T and
    renormalised inside the graph, so every server of the version serves calibrated numbers.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    inverse = float(1.0 / temperature)

    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        probs = tf.cast(model(x, training=False), tf.float32)
        if inverse != 1.0:
            probs = tf.nn.softmax(tf.math.log(tf.maximum(probs, 1e-12)) * inverse, axis=-1)
        return {output_name: probs}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([batch, *input_shape], tf.float32, name=input_name)],
    )
    archive.write_out(str(path), verbose=False)


def publish_version(
    model: keras.Model,
    model_dir: Path,
    card: dict[str, Any],
    temperature: float,
    test_report: Callable[[Path], dict[str, Any]],
) -> int:
    """Write a version into a staging folder and rename it into the next number, with its
    float TensorFlow Lite twin beside it (`publish_staged`).

    `test_report(extra)` writes the evaluation files into assets.extra/ and returns the card's
    "test" entry; the card is written after it. On any failure the staging folder goes.
    """

    def fill(staged: Path) -> None:
        write_savedmodel(model, staged, temperature)
        extra = write_extras(model, staged, card)
        card["test"] = test_report(extra)
        (extra / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True, default=str))

    return publish_staged(model_dir, fill)


def publish_staged(
    model_dir: Path, fill: Callable[[Path], None], twin_of: Callable[[Path], bytes | None] | None = None
) -> int:
    """`fill(staged)` writes a version's files into a staging folder; then its twin is converted
    (`twin_of(staged)`, by default from the staged SavedModel), the folder renamed into the next
    number and the twin written beside it. On any failure before the rename the staging folder
    goes; a twin that cannot be made or written only warns (the version works on its
    SavedModel). Every model the store publishes (digit model, checker, pen model, string
    reader) goes through here."""
    staged = model_store.staging_dir(model_dir)
    try:
        fill(staged)
        twin = (twin_of or tflite_twin)(staged)
        version = model_store.publish(staged, model_dir)
    except BaseException:
        model_store.discard(staged)
        raise
    if twin is not None:
        try:
            model_store.write_tflite(model_dir, version, twin)
        except OSError as exc:
            print(f"warning: version {version} published without its TensorFlow Lite twin: {exc}", flush=True)
    return version


def publish_model(
    model: keras.Model,
    model_dir: Path,
    card: dict[str, Any],
    twin_batch: int | None = None,
    **savedmodel: Any,
) -> int:
    """Publish a helper model (one-digit checker, pen model, string reader): its SavedModel
    (`write_savedmodel` with `savedmodel`'s options) and card, through `publish_staged`; returns
    the version. With `twin_batch` the Lite twin is converted for batches of that size (the
    converter lowers a recurrent layer's loop only when every shape but the sequence length is
    known, so the string reader's twin reads one row at a time)."""
    model_dir.mkdir(parents=True, exist_ok=True)

    def fill(staged: Path) -> None:
        write_savedmodel(model, staged, **savedmodel)
        extra = staged / EXTRA_DIR
        extra.mkdir(parents=True, exist_ok=True)
        (extra / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True, default=str))

    def fixed_batch_twin(_staged: Path) -> bytes | None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            write_savedmodel(model, Path(tmp), batch=twin_batch, **savedmodel)
            return tflite_twin(Path(tmp))

    return publish_staged(model_dir, fill, fixed_batch_twin if twin_batch else None)


def tflite_twin(saved_model: Path) -> bytes | None:
    """The float TensorFlow Lite twin of a SavedModel, which the app runs (`digit_app.predictor`).

    Converted before the version is published, so it lands a moment after the version does.
    A version without one still works, on its SavedModel: a failure here only warns.
    """
    from training.export_tflite import convert

    try:
        return convert(saved_model)
    except Exception as exc:  # noqa: BLE001 - the version itself is fine
        print(f"warning: no TensorFlow Lite twin: {exc}", flush=True)
        return None


def write_extras(model: keras.Model, path: Path, card: dict[str, Any]) -> Path:
    """The model card and the .keras file (what retraining fine-tunes) in assets.extra/."""
    extra = path / EXTRA_DIR
    extra.mkdir(parents=True, exist_ok=True)
    model.save(extra / KERAS_FILE)
    (extra / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
    return extra
