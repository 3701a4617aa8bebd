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
    p = np.asarray(probs, np.float64)
    if not digits or not digits.isdigit():
        return []
    ext = [BLANK]
    for ch in digits:
        ext += [int(ch), BLANK]
    s, frames = len(ext), len(p)
    logp = np.log(np.maximum(p[:, ext], 1e-30))
    skip = np.array([i >= 2 and ext[i] != BLANK and ext[i] != ext[i - 2] for i in range(s)])
    score = np.full((frames, s), -np.inf)
    back = np.zeros((frames, s), np.int64)
    score[0, :2] = logp[0, :2]
    for t in range(1, frames):
        prev = score[t - 1]
        options = np.stack(
            [
                prev,
                np.concatenate([[-np.inf], prev[:-1]]),
                np.where(skip, np.concatenate([[-np.inf, -np.inf], prev[:-2]]), -np.inf),
            ]
        )
        move = options.argmax(axis=0)
        score[t] = options[move, np.arange(s)] + logp[t]
        back[t] = np.arange(s) - move
    end = s - 1 if score[-1, s - 1] >= score[-1, s - 2] else s - 2
    if not np.isfinite(score[-1, end]):
        return []
    states = [end]
    for t in range(frames - 1, 0, -1):
        states.append(int(back[t, states[-1]]))
    states.reverse()
    out = []
    for k, ch in enumerate(digits):
        seen = [t for t, state in enumerate(states) if state == 2 * k + 1]
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


def string_log_probability(probs: np.ndarray, digits: str) -> float:
    """log P(digits | image); -inf for a string the frames cannot hold (or a non-digit)."""
    p = np.asarray(probs, np.float64)
    if not all(ch in "0123456789" for ch in digits):
        return float("-inf")
    labels = [int(ch) for ch in digits]
    frames = len(p)
    # The extended label: blank, d1, blank, d2, ..., dn, blank.
    ext = [BLANK]
    for d in labels:
        ext += [d, BLANK]
    s = len(ext)
    if frames == 0:
        return 0.0 if not labels else float("-inf")
    logp = np.log(np.maximum(p[:, ext], 1e-30))  # (T, S)
    # A skip from s-2 to s is allowed onto a digit that differs from the digit two before it.
    skip = np.zeros(s, bool)
    for i in range(2, s):
        skip[i] = ext[i] != BLANK and ext[i] != ext[i - 2]
    alpha = np.full(s, -np.inf)
    alpha[0] = logp[0, 0]
    if s > 1:
        alpha[1] = logp[0, 1]
    for t in range(1, frames):
        stay = alpha
        step = np.concatenate([[-np.inf], alpha[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, step), jump) + logp[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if s > 1 else alpha[-1])


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
