"""What a retraining may learn from, and what its candidate must pass to be published.

In: the stored feedback, the served model, the replay pool and, after fitting, both models'
answers. Out: which stored rows to learn from (suspect labels held out, `check_labels`), and
the gate's verdict with its reasons (`gate`).

Why: one careless or hostile user must not stop the app from learning, nor teach it wrong.
The labels are checked one by one before training (`digit_app.suspicion`: the served model,
its nearest training digits and the string reader); the candidate as a
whole is then held to MNIST, to every digit's recall and to the feedback it learned from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digit_app import suspicion
from digit_app.config import STRING_MODEL, RetrainConfig, get_settings
from digit_app.feedback import FeedbackStore
from training.head import View


def gate(
    cfg: RetrainConfig,
    y_test: np.ndarray,
    base_test: np.ndarray,
    cand_test: np.ndarray,
    y_fb: np.ndarray,
    base_fb: np.ndarray,
    cand_fb: np.ndarray,
) -> dict[str, Any]:
    """Compare the candidate with the served model; `passed` only if every rule holds."""

    def recall(probs: np.ndarray) -> np.ndarray:
        pred = probs.argmax(1)
        return np.array(
            [float((pred[y_test == d] == d).mean()) if (y_test == d).any() else 1.0 for d in range(10)]
        )

    base_acc = float((base_test.argmax(1) == y_test).mean())
    cand_acc = float((cand_test.argmax(1) == y_test).mean())
    class_drop = recall(base_test) - recall(cand_test)
    worst = int(class_drop.argmax())
    fb_base = float((base_fb.argmax(1) == y_fb).mean()) if len(y_fb) else 1.0
    fb_cand = float((cand_fb.argmax(1) == y_fb).mean()) if len(y_fb) else 1.0
    checks = {
        "mnist": base_acc - cand_acc <= cfg.max_mnist_drop + 1e-12,
        "per_class": float(class_drop[worst]) <= cfg.max_class_drop + 1e-12,
        "feedback": fb_cand >= cfg.min_feedback_accuracy,
    }
    reasons = []
    if not checks["mnist"]:
        reasons.append(
            f"MNIST test accuracy would drop {100 * (base_acc - cand_acc):.2f} points "
            f"(allowed {100 * cfg.max_mnist_drop:.2f})"
        )
    if not checks["per_class"]:
        reasons.append(
            f"recall of digit {worst} would drop {100 * class_drop[worst]:.2f} points "
            f"(allowed {100 * cfg.max_class_drop:.2f})"
        )
    if not checks["feedback"]:
        reasons.append(
            f"it gets only {fb_cand:.1%} of the feedback right (needs {cfg.min_feedback_accuracy:.0%})"
        )
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "reasons": reasons,
        "mnist_test": {"served": base_acc, "candidate": cand_acc, "n": int(len(y_test))},
        "worst_class_drop": {"digit": worst, "points": round(100 * float(class_drop[worst]), 3)},
        "feedback": {"served": fb_base, "candidate": fb_cand, "n": int(len(y_fb))},
    }


def second_opinion(cfg: RetrainConfig, images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Each stored label's probability under the store's newest string reader, or None when the
    config does not ask for it or the store has none (then the model and neighbours decide)."""
    from digit_app.model_store import list_versions
    from digit_app.string_reader import StringReader

    string_dir = cfg.resolved_out().parent / STRING_MODEL
    if not cfg.suspect_string_reader or not len(labels) or not list_versions(string_dir):
        return None
    reader = StringReader.load(string_dir, lite=get_settings().use_tflite)  # its newest version
    return reader.label_probabilities(images, labels)


def score_labels(
    cfg: RetrainConfig,
    fb: View,
    labels: np.ndarray,
    bank: tuple[np.ndarray, np.ndarray],
    second: np.ndarray | None = None,
) -> list[suspicion.Suspicion]:
    """Each label scored against the model's view of its image (`training.head.View`), the
    labels of its nearest digits in `bank` (unit features and labels of the replay pool) and,
    when given, the string reader's probability of it (`second_opinion`)."""
    near = suspicion.nearest_labels(fb.unit, bank[0], bank[1], cfg.suspect_neighbours)
    return suspicion.score(fb.probs, labels, near, second)


def check_labels(
    cfg: RetrainConfig,
    store: FeedbackStore,
    version: int,
    feedback: tuple[View, np.ndarray, list[int], list[str | None]],
    bank: tuple[np.ndarray, np.ndarray],
    second: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Score every stored label against the served model and its nearest training digits (the
    replay pool: MNIST and real train-split handwriting), store the scores, and say which rows
    to learn from (`digit_app.suspicion.usable`) with the counts for the report."""
    view, y_fb, ids, reviews = feedback
    scored = score_labels(cfg, view, y_fb, bank, second)
    store.set_suspicion(dict(zip(ids, scored)), version)
    use = suspicion.usable(scored, reviews, cfg.suspect_threshold, cfg.hold_out_suspects)
    suspect = np.array([s.score >= cfg.suspect_threshold for s in scored], dtype=bool)
    accepted = np.array([r == suspicion.ACCEPTED for r in reviews], dtype=bool)
    rejected = np.array([r == suspicion.REJECTED for r in reviews], dtype=bool)
    return use, {
        "stored": int(len(ids)),
        "used": int(use.sum()),
        "held_out_suspect": int((suspect & ~accepted & ~rejected).sum()) if cfg.hold_out_suspects else 0,
        "suspect": int(suspect.sum()),
        "accepted": int(accepted.sum()),
        "rejected": int(rejected.sum()),
    }
