"""Reading the string model's per-frame probabilities: the digits, each one's frames and
probabilities, and how likely any given digit string is.

In: (T, 11) probabilities, one row per frame of the image (4 px of the model's input wide),
class 10 being "blank" (no digit ends here), as the `digit_string` model outputs them.
Out: the decoded digits (`Decoded`), or the probability of a string under the model.

Why: a CTC model does not say where digits are or how sure it is of each; this module turns
its frame answers into what the app shows for any reader (a label, a confidence and ten
probabilities per digit, the frames each digit was seen in) and into a score for any
candidate string, so that the app can weigh the segmentation reader's answer with it.
Pure numpy; no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLANK = 10  # the class index of "no digit here" (the last of the 11 outputs)


@dataclass(frozen=True)
class Decoded:
    """One digit of the best path: its label, its ten probabilities, and where it was seen."""

    label: int
    probabilities: tuple[float, ...]  # at the digit's surest frame, over the ten digits (sum <= 1)
    confidence: float  # P(label) at that frame: blank and the other digits share the rest
    first: int  # first frame of the digit's run in the best path
    last: int  # last frame of that run (inclusive)
    peak: int  # its surest frame


def best_path(probs: np.ndarray) -> list[Decoded]:
    """The greedy (best path) reading: each frame's likeliest class, runs merged, blanks dropped.

    For digit strings greedy decoding loses almost nothing to a beam: the classes are few and
    the frames sharply peaked (measured in BENCHMARKS.md).
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[1] != BLANK + 1:
        raise ValueError(f"expected (frames, {BLANK + 1}) probabilities, got {p.shape}")
    top = p.argmax(axis=1)
    out: list[Decoded] = []
    t = 0
    while t < len(top):
        c = int(top[t])
        end = t
        while end + 1 < len(top) and top[end + 1] == c:
            end += 1
        if c != BLANK:
            peak = t + int(p[t : end + 1, c].argmax())
            row = p[peak, :BLANK]
            out.append(Decoded(c, tuple(float(v) for v in row), float(row[c]), t, end, peak))
        t = end + 1
    return out


def align(probs: np.ndarray, digits: str) -> list[Decoded]:
    """The likeliest alignment of a given string to the frames (CTC's Viterbi path): each
    digit with its frames and its probabilities there, as `best_path` gives them for its own
    reading; [] when the frames cannot hold the string. Why: a string chosen over the best path
    (by other views of the picture) still needs a box and probabilities per digit."""
    lattice = _lattice(probs, digits) if digits else None
    if lattice is None or not len(lattice[0]):
        return []
    logp, skip = lattice
    p = np.asarray(probs, np.float64)
    states = np.arange(len(skip))
    score, back = logp[0].copy(), np.zeros(logp.shape, np.int64)
    score[2:] = -np.inf
    for t in range(1, len(logp)):
        options = _shifted(score, skip)
        move = options.argmax(axis=0)
        score, back[t] = options[move, states] + logp[t], states - move
    end = len(skip) - 1 if score[-1] >= score[-2] else len(skip) - 2
    if not np.isfinite(score[end]):
        return []
    path = [end]
    for t in range(len(logp) - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    path.reverse()
    out = []
    for k, ch in enumerate(digits):
        seen = [t for t, state in enumerate(path) if state == 2 * k + 1]
        c = int(ch)
        peak = seen[int(np.argmax(p[seen, c]))]
        row = p[peak, :BLANK]
        out.append(Decoded(c, tuple(float(v) for v in row), float(row[c]), seen[0], seen[-1], peak))
    return out


def string_probability(probs: np.ndarray, digits: str) -> float:
    """P(digits | image) under the model: the sum over every alignment (CTC's forward pass).

    The string reader's own answer and any other candidate (the segmentation reader's) are
    scored on the same scale, which is what a decision between two readers needs.
    """
    return float(np.exp(string_log_probability(probs, digits)))


def _lattice(probs: np.ndarray, digits: str) -> tuple[np.ndarray, np.ndarray] | None:
    """CTC's lattice for `digits`: (T, S) log-probabilities of the extended label (blank, d1,
    blank, ..., dn, blank) at every frame, and where a step may skip the blank between two
    different digits; None for a string that holds anything but digits 0-9."""
    if not all(ch in "0123456789" for ch in digits):
        return None
    ext = [BLANK]
    for ch in digits:
        ext += [int(ch), BLANK]
    logp = np.log(np.maximum(np.asarray(probs, np.float64)[:, ext], 1e-30))
    skip = np.array([i >= 2 and ext[i] != BLANK and ext[i] != ext[i - 2] for i in range(len(ext))])
    return logp, skip


def _shifted(row: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """(3, S): staying in a state, stepping from the one before, jumping over a blank."""
    padded = np.concatenate([[-np.inf, -np.inf], row])
    return np.stack([row, padded[1:-1], np.where(skip, padded[: len(row)], -np.inf)])


def string_log_probability(probs: np.ndarray, digits: str) -> float:
    """log P(digits | image); -inf for a string the frames cannot hold (or a non-digit)."""
    lattice = _lattice(probs, digits)
    if lattice is None:
        return float("-inf")
    logp, skip = lattice
    if len(logp) == 0:
        return 0.0 if not digits else float("-inf")
    alpha = np.full(len(skip), -np.inf)
    alpha[:2] = logp[0, :2]
    for t in range(1, len(logp)):
        alpha = np.logaddexp.reduce(_shifted(alpha, skip), axis=0) + logp[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(skip) > 1 else alpha[-1])


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions and substitutions turning `a` into `b`: how a string reading is
    scored digit by digit (a digit lost or added costs one, not the rest of the string)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
