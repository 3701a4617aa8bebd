"""Suspect corrections: how likely a stored label is wrong, and why, in words a person can check.

In: the served model's probabilities for stored feedback, the labels users gave, and (when a
retraining computes them) the labels of each sample's nearest training digits in the model's
feature space. Out: one `Suspicion` per sample (a score in 0..1 and a reason), and which samples
a retraining may learn from.

Why: the promotion gate judges a candidate as a whole, so a few careless or hostile labels
among honest ones stopped the app from learning anything. In the spirit of confident learning
(Northcutt et al., 2021), a label is suspect when two independent views disagree with it: the
model reads something else, *and* the digits nearest it among real handwriting the model
learned from carry that other label too, *and* (when the store has one) the string reader, a
network that learned from other data, finds the label unlikely as well. An honest hard case or
a writing convention the model has not learned is misread by the model, but its neighbours are
mixed or the other network reads it, so it is kept. The score is (1 - p_model(label)) *
(1 - share of neighbours with the label) * (1 - p_string(label)); with the model
alone (when a correction is saved, before a retraining has the neighbours) it is 1 - p(label),
marked unchecked, and holds nothing out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ACCEPTED, REJECTED = "accepted", "rejected"
REVIEWS = (ACCEPTED, REJECTED)


@dataclass(frozen=True)
class Suspicion:
    score: float  # 0: the evidence agrees with the label .. 1: everything says another digit
    reason: str
    checked: bool  # True: with real handwriting's neighbours; False: the model's reading alone


def _reading(p: np.ndarray, label: int) -> str:
    read = int(p.argmax())
    if read == label:
        return f"the model reads {label} too ({p[read]:.0%})"
    return f"the model reads {read} at {p[read]:.0%} ({label}: {p[label]:.0%})"


def _neighbours(near: np.ndarray, label: int) -> str:
    k = len(near)
    counts = np.bincount(near, minlength=10)
    top = int(counts.argmax())
    same = int(counts[label])
    if counts[top] == k:
        return f"its {k} nearest training digits are all {top}s"
    if same == 0:
        return f"none of its {k} nearest training digits is a {label} ({counts[top]} are {top}s)"
    return f"{same} of its {k} nearest training digits are {label}s"


def _second(p: float, label: int) -> str:
    return (
        f"the string reader gives {label} {p:.0%}" if p >= 0.005 else f"the string reader rules out {label}"
    )


def score(
    probabilities: np.ndarray,
    labels: Sequence[int],
    neighbour_labels: np.ndarray | None = None,
    second: np.ndarray | None = None,
) -> list[Suspicion]:
    """One Suspicion per sample; `neighbour_labels` (N, k) are the labels of each sample's k
    nearest training digits in the model's features, or None for the model alone; `second`
    (N,) is each label's probability under a second model (the string reader), if there is one."""
    probs = np.asarray(probabilities, np.float64).reshape(-1, 10)
    out = []
    for i, label in enumerate(int(v) for v in labels):
        p = probs[i]
        against = 1.0 - float(p[label])
        if neighbour_labels is None:
            out.append(
                Suspicion(
                    round(against, 4),
                    _reading(p, label) + "; not yet checked against real handwriting",
                    False,
                )
            )
            continue
        near = np.asarray(neighbour_labels[i], np.int64)
        apart = 1.0 - float((near == label).mean()) if len(near) else 1.0
        views = [_reading(p, label), _neighbours(near, label)]
        other = 1.0
        if second is not None:
            other = 1.0 - float(second[i])
            views.append(_second(float(second[i]), label))
        reason = ", ".join(views[:-1]) + ", and " + views[-1]
        out.append(Suspicion(round(against * apart * other, 4), reason, True))
    return out


def usable(
    suspicions: Sequence[Suspicion | None],
    reviews: Sequence[str | None],
    threshold: float,
    hold_out: bool = True,
) -> np.ndarray:
    """Which samples a retraining learns from: never a rejected one; an accepted one always; a
    checked score at or above `threshold` is held out (when `hold_out`); the rest are used."""
    keep = []
    for s, review in zip(suspicions, reviews):
        if review == REJECTED:
            keep.append(False)
        elif review == ACCEPTED or not hold_out or s is None or not s.checked:
            keep.append(True)
        else:
            keep.append(s.score < threshold)
    return np.array(keep, dtype=bool)


def is_suspect(score: float | None, checked: bool | None, review: str | None, threshold: float) -> bool:
    """Shown first on the Retrain page: a checked score over the threshold no admin has decided on."""
    return bool(checked) and score is not None and score >= threshold and review is None


def nearest_labels(features: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray, k: int) -> np.ndarray:
    """(N, k) labels of each sample's k nearest bank digits by cosine (features of unit length)."""
    if len(features) == 0 or len(bank) == 0:
        return np.zeros((len(features), 0), np.int64)
    k = min(k, len(bank))
    out = np.empty((len(features), k), np.int64)
    for start in range(0, len(features), 512):  # (512 x bank) similarities at a time
        sims = features[start : start + 512] @ bank.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[start : start + 512] = np.asarray(bank_labels)[idx]
    return out
