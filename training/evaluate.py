"""Evaluation: accuracy, per-class precision/recall/F1, confusion matrix, and plots.

`python -m training.evaluate` evaluates a published version on the MNIST test set and
writes its report to a folder (published versions are never edited; the training run
writes the same report into the version before it is published).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from digit_app.config import get_settings


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = 10) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def metrics_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and their macro averages."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "n": int(total),
        "per_class": {
            str(c): {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in range(cm.shape[0])
        },
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "confusion_matrix": cm.tolist(),
    }


def evaluate_probabilities(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    return metrics_from_confusion(confusion_matrix(y_true, probs.argmax(axis=1), probs.shape[1]))


def plot_confusion(cm: np.ndarray, path: Path, title: str = "Confusion matrix") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for key in ("loss", "val_loss"):
        if key in history:
            ax1.plot(epochs, history[key], label=key)
    for key in ("accuracy", "val_accuracy"):
        if key in history:
            ax2.plot(epochs, history[key], label=key)
    ax1.set(xlabel="epoch", title="loss")
    ax2.set(xlabel="epoch", title="accuracy", ylim=(0.97, 1.0))
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_worst(images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, path: Path, k: int = 36) -> None:
    """The misclassified digits the model was most confident about."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:k]
    cols = 9
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i].reshape(28, 28), cmap="gray")
        ax.set_title(f"{y_true[i]}→{pred[i]} {probs[i, pred[i]]:.2f}", fontsize=7)
    fig.suptitle("Worst misclassified test digits (true→predicted, confidence)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    folder: Path, images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, history: dict | None = None
) -> dict[str, Any]:
    """Metrics JSON and the three PNGs in folder; returns the metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_probabilities(y_true, probs)
    (folder / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion(
        np.array(metrics["confusion_matrix"]),
        folder / "confusion_matrix.png",
        f"MNIST test: {metrics['accuracy']:.2%}",
    )
    plot_worst(images, y_true, probs, folder / "worst_errors.png")
    if history:
        plot_history(history, folder / "training_curves.png")
    return metrics


def format_metrics(m: dict[str, Any]) -> str:
    lines = [f"accuracy {m['accuracy']:.4%} on {m['n']} images", "class  precision  recall     f1  support"]
    for c, r in m["per_class"].items():
        lines.append(f"{c:>5}  {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:6.4f} {r['support']:8d}")
    mac = m["macro"]
    lines.append(f"macro  {mac['precision']:9.4f} {mac['recall']:7.4f} {mac['f1']:6.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--version", type=int, default=None, help="Model version to evaluate (default: served)."
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="Model folder (default: from config).")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="MNIST folder (default: $MNIST_DIR/cache)."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Report folder (default: <data_dir>/reports/<model>-v<N>)."
    )
    parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first N test images.")
    args = parser.parse_args(argv)

    from digit_app.model_store import ModelStoreError, latest_version
    from digit_app.predictor import Predictor
    from training.data import DataError, load_mnist

    settings = get_settings()
    model_dir = args.model_dir or settings.model_dir
    try:
        version = args.version or latest_version(model_dir)
        predictor = Predictor.load(model_dir, version)
        mnist = load_mnist(args.data_dir)
    except (ModelStoreError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    x, y = mnist.x_test[: args.limit], mnist.y_test[: args.limit]
    probs = predictor.predict_probabilities(x.astype(np.float32)[..., None] / 255.0)
    out = args.out or settings.data_dir / "reports" / f"{model_dir.name}-v{version}"
    metrics = write_report(out, x, y, probs)
    print(f"model {model_dir.name} version {version}")
    print(format_metrics(metrics))
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
