"""Export a model version to TensorFlow Lite (float and int8) for phones and edge devices.

    python -m training.export_tflite                  # the served version
    python -m training.export_tflite --version 6 --calibration 1000

Writes `<model_store>/<name>-tflite/<N>/model_float.tflite`, `model_int8.tflite` and
`report.json` (size, MNIST test accuracy and latency of each), beside the SavedModel
versions; the versions themselves are never edited. The int8 model is fully integer
inside, calibrated on MNIST training images, with float input and output so it takes the
same `image` (1x28x28x1, 0..1) and returns the same ten probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from digit_app import model_store  # noqa: E402
from digit_app.config import get_settings  # noqa: E402
from digit_app.lite import tflite_interpreter  # noqa: E402
from digit_app.model_store import TFLITE_FLOAT  # noqa: E402
from training.data import DataError, load_mnist  # noqa: E402


def convert(saved_model: Path, calibration: np.ndarray | None = None) -> bytes:
    """SavedModel -> .tflite bytes; int8 (full integer, float I/O) when calibration images are given."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    if calibration is not None:
        images = calibration.astype(np.float32)[..., None] / 255.0

        def representative() -> Any:
            for i in range(len(images)):
                yield [images[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def predict_tflite(model: bytes, images: np.ndarray) -> np.ndarray:
    """Probabilities for uint8 (N,28,28) images, one image per call as on a device."""
    interp = tflite_interpreter(model)
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    x = images.astype(np.float32)[..., None] / 255.0
    probs = np.zeros((len(x), 10), np.float32)
    for i in range(len(x)):
        interp.set_tensor(inp, x[i : i + 1])
        interp.invoke()
        probs[i] = interp.get_tensor(out)[0]
    return probs


def latency_ms(model: bytes, image: np.ndarray, runs: int = 300) -> dict[str, float]:
    interp = tflite_interpreter(model)
    inp = interp.get_input_details()[0]["index"]
    x = image.astype(np.float32)[None, ..., None] / 255.0
    times = []
    for _ in range(runs + 20):
        t = time.perf_counter()
        interp.set_tensor(inp, x)
        interp.invoke()
        times.append((time.perf_counter() - t) * 1000)
    times = times[20:]
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def export(
    version: int | None = None, calibration: int = 1000, data_dir: Path | None = None
) -> dict[str, Any]:
    """Write both TFLite files and their report; returns the report."""
    settings = get_settings()
    model_dir = settings.model_dir
    version = version or model_store.latest_version(model_dir)
    source = model_store.version_dir(model_dir, version)
    mnist = load_mnist(data_dir or settings.mnist_dir, progress=False)
    rng = np.random.default_rng(0)
    calib = mnist.x_train[rng.choice(len(mnist.x_train), size=calibration, replace=False)]
    card = model_store.read_card(model_dir, version)
    report: dict[str, Any] = {
        "version": version,
        "savedmodel_test_accuracy": (card.get("test") or {}).get("accuracy"),
        "calibration_images": calibration,
    }
    for name, images in (("float", None), ("int8", calib)):
        blob = convert(source, images)
        path = model_store.write_tflite(
            model_dir, version, blob, TFLITE_FLOAT if name == "float" else f"model_{name}.tflite"
        )
        probs = predict_tflite(blob, mnist.x_test)
        report[name] = {
            "file": path.name,
            "bytes": len(blob),
            "test_accuracy": float((probs.argmax(1) == mnist.y_test).mean()),
            "latency_ms": latency_ms(blob, mnist.x_test[0]),
        }
        print(
            f"{name}: {len(blob) / 1024:.0f} KiB, MNIST test {report[name]['test_accuracy']:.2%}", flush=True
        )
    model_store.write_tflite(model_dir, version, json.dumps(report, indent=2).encode(), "report.json")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export_tflite",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--version", type=int, default=None, help="Model version to export (default: the served one)."
    )
    parser.add_argument(
        "--calibration", type=int, default=1000, help="MNIST training images to calibrate int8 on."
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="Folder with the MNIST files (default: $MNIST_DIR)."
    )
    args = parser.parse_args(argv)
    try:
        report = export(args.version, args.calibration, args.data_dir)
    except (DataError, model_store.ModelStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
