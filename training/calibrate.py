"""Make the served probabilities honest: temperature scaling fitted on the validation split.

    python -m training.calibrate [--version N] [--data-dir DIR]

Label smoothing and heavy augmentation leave the network under-confident: on MNIST's
validation split its answers at 0.4-0.5 are right far more often than 40-50% of the time.
The app marks an answer "unsure" below 0.5 and shows the confidence to the user, so both
should mean what they say. One number fixes it (Guo et al., 2017, "On Calibration of Modern
Neural Networks"): the probabilities are raised to the power 1/T and renormalised, with T
chosen to minimise the negative log-likelihood on the validation images, which training
held out. The class with the highest probability never changes, so accuracy does not.

T is applied inside the exported SavedModel, so the app, the CLI and TensorFlow Serving all
serve the same calibrated numbers. The `.keras` file that retraining fine-tunes stays
uncalibrated; each version's card records its temperature, and retraining carries it over.
Training fits it for every new version; this command calibrates an existing version and
publishes the result as the next version (versions are never edited).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np

from digit_app import model_store
from digit_app.calibration import EPS, scale
from digit_app.config import get_settings


def nll(probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = scale(probs, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(p, EPS))))


def calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over confidence bins."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def fit_temperature(probs: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T minimising the NLL: golden-section search on log T (the NLL is convex in 1/T)."""
    a, b = np.log(lo), np.log(hi)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(probs, labels, np.exp(c)), nll(probs, labels, np.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(probs, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(probs, labels, np.exp(d))
    return float(np.exp((a + b) / 2.0))


def report(probs: np.ndarray, labels: np.ndarray, temperature: float, where: str) -> dict[str, Any]:
    """What the card says about a temperature: where it was fitted, and what it changed there."""
    after = scale(probs, temperature)
    return {
        "temperature": round(temperature, 4),
        "fitted_on": where,
        "n": int(len(labels)),
        "nll_before": round(nll(probs, labels), 5),
        "nll_after": round(nll(probs, labels, temperature), 5),
        "ece_before": round(calibration_error(probs, labels), 5),
        "ece_after": round(calibration_error(after, labels), 5),
    }


def calibrate_version(model_dir: Path, version: int | None, data_dir: Path | None) -> dict[str, Any]:
    """Fit T for a version on its own validation split and publish the calibrated copy."""
    from training.data import held_out_for_card, load_mnist
    from training.evaluate import write_report
    from training.export import KERAS_FILE, git_commit, publish_version
    from training.model import load_model

    base = model_store.version_dir(model_dir, version)
    card = model_store.read_card(model_dir, int(base.name))
    if "calibration" in card:
        raise SystemExit(
            f"version {base.name} is already calibrated (T = {model_store.card_temperature(card)})"
        )
    model = load_model(base / model_store.EXTRA_DIR / KERAS_FILE)
    mnist = load_mnist(data_dir)
    _, val, test = held_out_for_card(card, mnist.y_train, len(mnist.x_test))
    x_val = mnist.x_train[val].astype(np.float32)[..., None] / 255.0
    print(f"fitting the temperature of version {base.name} on {len(val)} validation images", flush=True)
    val_probs = model.predict(x_val, batch_size=1024, verbose=0)
    temperature = fit_temperature(val_probs, mnist.y_train[val])
    new_card = dict(card)
    new_card["model_name"] = model_dir.name
    new_card["calibration"] = report(val_probs, mnist.y_train[val], temperature, "MNIST validation split")
    new_card["derived_from"] = {
        "version": int(base.name),
        "how": "temperature scaling (training.calibrate)",
        "git_commit": git_commit(),  # the code that calibrated it; "git_commit" is the training's
    }
    new_card["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    x_test, y_test = mnist.x_test[test], mnist.y_test[test]
    test_probs = scale(model.predict(x_test.astype(np.float32)[..., None] / 255.0, verbose=0), temperature)
    new_card["version"] = publish_version(
        model,
        model_dir,
        new_card,
        temperature,
        lambda extra: write_report(extra, x_test, y_test, test_probs, card.get("history", {})),
    )
    return new_card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model folder (default: the served model's)."
    )
    parser.add_argument(
        "--version", type=int, default=None, help="Version to calibrate (default: the served one)."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Folder with the MNIST IDX files (default: $MNIST_DIR, cache).",
    )
    args = parser.parse_args(argv)
    model_dir = args.model_dir or get_settings().model_dir
    card = calibrate_version(model_dir, args.version, args.data_dir)
    cal = card["calibration"]
    print(
        f"published {model_dir}/{card['version']}: T = {cal['temperature']}, validation NLL"
        f" {cal['nll_before']} -> {cal['nll_after']}, calibration error {cal['ece_before']} -> {cal['ece_after']};"
        f" test accuracy {card['test']['accuracy']:.4%} (unchanged)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
