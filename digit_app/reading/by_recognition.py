"""Segmentation by recognition: the digits of a row chosen by asking the model how it reads them.

In: a row's groups and their masks, its ink, and the model (`Scorer`), with the one-digit
checker (`Checker`) when there is one. Out: the `Piece`s of the best reading, each with the
model's answer and its normalised images, so that neither is computed again.
Why: where digits touch, only a reader can tell where one ends. Every group is over-segmented
(cut near its ink minima into slices about a quarter of a digit wide, along paths that weave
around the ink, `cuts`), then consecutive slices are joined into digits by dynamic
programming: the best path maximises the sum over its digits of log(model confidence) +
log(shape prior). The prior says what a digit looks like next to its neighbours: about 0.75
of the row's height wide (a 1 narrower, rarely more than 1.2), not much shorter than the row,
and shaped like the class the model reads in it. The candidates that cut no group are asked
first, and the cuts only when they could still win. The weights were chosen on synthetic
strings of held-out MNIST digits, many touching (`python -m benchmarks.strings`); the real
cheques stay a held-out measure.
"""

from __future__ import annotations

import numpy as np

from digit_app.calibration import scale
from digit_app.reading.cuts import slice_group, union, union_box
from digit_app.reading.groups import FLAT, Group
from digit_app.reading.measure import support
from digit_app.reading.normalize import normalize_steps
from digit_app.reading.types import Checker, Piece, Scorer

MAX_SLICES = 8  # a digit spans at most this many slices
PRIOR_WEIGHT = 0.25  # of the shape prior (width and height next to the row's), against log-confidence
CUT_COST = 0.5  # in log-confidence: a cut must make the digits that much more certain
# Weight of log P(one digit) from the one-digit checker (`training.one_digit`) in a reading's
# score. Chosen with version 6 and a scratch checker of the same design on 300 synthetic strings
# per row (seed 0): weight 1 took strings whose neighbours touch from 78.0 to 88.7% (35% touching)
# and 51.7 to 68.7% (all); weight 2 read them 89.3 / 68.0%, weight 4 88.3 / 66.0%. The cheques,
# read then too (47.0 -> 52.0 / 50.2 / 48.2%), picked 1 over 2. The shipped checker: see
# BENCHMARKS.md (cheques 49.44%).
# Not asked on the clean one-piece path (`pipeline._clean_one_piece_row`, most drawings): there
# it split wide single 0s and flagged 1s (pendigits as the Draw page reads them 98.07 ->
# 97.82%), and left out it changed none of the strings or cheques read.
ONE_DIGIT_WEIGHT = 1.0
# MNIST's digits' width / height, per class: median and spread of its log (training set, ink
# above 80). Two touching digits read as one are often wider than the one digit the model
# names, and half a digit narrower: a reading pays for a shape unusual for its class.
ASPECT_LOG = np.array([-0.105, -0.916, -0.051, -0.223, -0.223, -0.105, -0.357, -0.223, -0.288, -0.357])
ASPECT_SPREAD = np.array([0.199, 0.421, 0.218, 0.214, 0.214, 0.264, 0.211, 0.226, 0.226, 0.179])
ASPECT_WEIGHT = 1.0  # of how usual the piece's shape is for the class read (0: not weighed)
ASPECT_SLACK = 1.5  # real writing varies more than MNIST


def read_row(
    groups: list[Group],
    masks: list[np.ndarray],
    ref: float,
    ink: np.ndarray,
    scorer: Scorer,
    temperature: float = 1.0,
    checker: Checker | None = None,
) -> list[Piece]:
    """The pieces of the row's best reading, left to right, each with the model's answer.

    Candidates are runs of consecutive slices (never across a clear gap between groups); the
    model reads them in batches, and the best path through them is kept.
    """
    slices: list[Piece] = []
    starts_group: list[bool] = []
    group_h: list[int] = []  # the height of each slice's group
    for g, m in zip(groups, masks):
        parts = slice_group(g, m, ref)
        slices.extend(parts)
        starts_group.extend([True] + [False] * (len(parts) - 1))
        group_h.extend([g.h] * len(parts))
    n = len(slices)
    # Candidate digits: runs of consecutive slices, not bridging a clear gap between groups.
    cands: list[tuple[int, int, tuple[int, int, int, int]]] = []
    for i in range(n):
        right = slices[i].box[0] + slices[i].box[2]
        for j in range(i, min(n, i + MAX_SLICES)):
            if j > i:
                gap = slices[j].box[0] - right
                if starts_group[j] and gap > 0.15 * ref:
                    break
                right = max(right, slices[j].box[0] + slices[j].box[2])
            box = slices[i].box if j == i else union_box(slices[i : j + 1])
            if box[2] > 1.8 * ref:
                break
            cands.append((i, j, box))

    def score(k: int, logp: float) -> float:
        i, j, box = cands[k]
        value = logp + shape_prior(box[2], box[3], ref)
        if not starts_group[i]:
            # Cutting through ink needs evidence: a cost per cut, more for a sliver of a digit.
            value -= CUT_COST + _sliver_cost(box[2], ref)
        if j + 1 < n and not starts_group[j + 1]:
            value -= _sliver_cost(box[2], ref)
        return value

    pieces: dict[int, Piece] = {}
    logps: list[float | None] = [None] * len(cands)

    def piece(k: int) -> Piece:
        if k not in pieces:
            i, j, _ = cands[k]
            pieces[k] = slices[i] if j == i else union(slices[i : j + 1])
        return pieces[k]

    def ask(ks: list[int]) -> None:
        if not ks:
            return
        for k in ks:
            _prepare(ink, piece(k))
        batch = np.stack([piece(k).normalized[2] for k in ks]).astype(np.float32)
        probs = np.asarray(scorer(batch))
        one = _one_digit_logp(checker, batch)
        for n_k, (k, p) in enumerate(zip(ks, probs)):
            piece(k).probabilities = p
            logps[k] = reading_score(p, cands[k][2][2], cands[k][2][3], temperature) + one[n_k]

    # Pieces lower than FLAT of the row are not digits: alone they were dropped as marks
    # (`segment.segment_pieces`); cut off a group (a dash touching the last digit, a 1's flag
    # or a 5's bar split from its digit) one may be left out for the price of the cut that
    # frees it.
    # Only pieces low within their own group too: the rest of the group still holds a digit.
    marks = {
        k: -CUT_COST * (not starts_group[i])
        for k, (i, _, box) in enumerate(cands)
        if box[3] < FLAT * min(ref, group_h[i])
    }

    def best_path() -> list[int]:
        # Unread candidates count with the best confidence there is (log 1 = 0): an upper bound.
        # A mark left out is on the path as -1 - k.
        best = np.full(n + 1, -np.inf)
        best[0] = 0.0
        back: list[tuple[int, int] | None] = [None] * (n + 1)
        by_end: dict[int, list[tuple[int, int, float]]] = {}
        for k, (i, j, _) in enumerate(cands):
            by_end.setdefault(j, []).append((i, k, score(k, 0.0 if logps[k] is None else logps[k])))
            if k in marks:
                by_end[j].append((i, -1 - k, marks[k]))
        for j in range(n):
            for i, k, value in by_end.get(j, []):
                if best[i] + value > best[j + 1]:
                    best[j + 1] = best[i] + value
                    back[j + 1] = (i, k)
        path: list[int] = []
        j = n
        while j > 0 and back[j] is not None:
            i, k = back[j]
            path.append(k)
            j = i
        return path[::-1]

    # First read the candidates that cut no group (usually the digits themselves). If the best
    # path, with every unread candidate granted full confidence, still uses only read ones,
    # no cut can beat it and the model is not asked about the cuts at all.
    ask([k for k, (i, j, _) in enumerate(cands) if starts_group[i] and (j + 1 == n or starts_group[j + 1])])
    path = best_path()
    if any(k >= 0 and logps[k] is None for k in path):
        ask([k for k in range(len(cands)) if logps[k] is None])
        path = best_path()
    return [piece(k) for k in path if k >= 0]


def reading_score(p: np.ndarray, w: float, h: float, temperature: float = 1.0) -> float:
    """log P(class) plus how usual the piece's shape is for that class, for the best class.

    Probabilities calibrated with a temperature T are first taken back to the network's own
    (p ** T, renormalised): calibration is for what the user reads, and sharpening them made
    two touching digits read as one confident digit win more often.
    """
    if temperature != 1.0:
        p = scale(np.asarray(p)[None], 1.0 / temperature)[0]
    logp = np.log(np.maximum(p, 1e-6))
    if ASPECT_WEIGHT:
        z = (np.log(max(w, 1.0) / max(h, 1.0)) - ASPECT_LOG) / (ASPECT_SLACK * ASPECT_SPREAD)
        logp = logp - ASPECT_WEIGHT * 0.5 * np.maximum(np.abs(z) - 1.0, 0.0) ** 2
    return float(logp.max())


def shape_prior(w: float, h: float, ref: float) -> float:
    """Log-prior of a digit w wide and h high in a row `ref` high: 0 for a usual digit, less
    for one much wider than 0.75 of the row, narrower than a 1, or much shorter than the row."""
    a = w / ref
    if a > 0.75:
        lp = -0.5 * ((a - 0.75) / 0.3) ** 2
    elif a < 0.25:
        lp = -0.5 * ((0.25 - a) / 0.15) ** 2
    else:
        lp = 0.0
    hr = h / ref
    if hr < 0.6:
        lp -= 0.5 * ((0.6 - hr) / 0.15) ** 2
    return PRIOR_WEIGHT * lp


def piece_ink_at(ink: np.ndarray, piece: Piece) -> tuple[int, int, np.ndarray]:
    """The ink of one piece (its pixels plus their anti-aliased edge) cut out of the image, and
    where its top-left corner lies in the image: (x0, y0, ink)."""
    x, y, w, h = piece.box
    pad = 2  # the reach of `support`
    H, W = ink.shape
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(W, x + w + pad), min(H, y + h + pad)
    local = np.zeros((y1 - y0, x1 - x0), bool)
    local[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = piece.mask
    return x0, y0, np.where(support(local), ink[y0:y1, x0:x1], 0).astype(ink.dtype)


def _sliver_cost(w: float, ref: float) -> float:
    """What a cut pays for leaving a piece narrower than 0.45 of the row (a sliver of a digit)."""
    a = w / ref
    return 0.5 * ((0.45 - a) / 0.1) ** 2 if a < 0.45 else 0.0


def _one_digit_logp(checker: Checker | None, batch: np.ndarray) -> np.ndarray:
    """ONE_DIGIT_WEIGHT * log P(one digit) per image (zeros without a checker).

    The digit model reads two touching digits, or a digit cut in half, as some digit, often
    confidently; the checker's doubt is what lets the cut (or the whole) win instead.
    """
    if checker is None or not ONE_DIGIT_WEIGHT:
        return np.zeros(len(batch))
    p = np.asarray(checker(batch), dtype=np.float64).reshape(len(batch))
    return ONE_DIGIT_WEIGHT * np.log(np.maximum(p, 1e-4))


def _prepare(ink: np.ndarray, piece: Piece) -> None:
    """Cut out a piece's ink and normalise it, once."""
    if piece.normalized is None:
        piece.ink = piece_ink_at(ink, piece)
        piece.normalized = normalize_steps(piece.ink[2])
