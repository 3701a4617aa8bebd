"""Pen strokes -> the pen model's input: a drawing as a fixed-length sequence of pen moves.

In: one digit's strokes, each an (N, 2) array of points in any pixel frame with y down (the
canvas's, a tablet's after `training.handwriting` flips it). Out: (PEN_POINTS, 5) float32:
x and y centred and scaled by the drawing's larger side, the step to the next point, and 1
where a stroke starts.

Why: the image model sees only ink, so a one-stroke 4 and a closed-top 4, or a 9 whose loop
ends open, can look alike in 28x28 pixels while the pen's path differs clearly. The pen model
(`training.pen`) reads this sequence, and the Predictor blends its answer with the image
model's for drawings (docs/pen-model.md). Points are spread evenly along the ink, so how fast
a person drew and how often the device sampled do not matter; each stroke gets points in
proportion to its length (at least two), so a short flag or bar keeps its shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PEN_POINTS = 64  # points per drawing: a digit's longest strokes keep their corners at this
PEN_FEATURES = 5  # x, y, dx, dy, pen-down
_STEP_SCALE = 5.0  # steps are about 1/30 of the drawing; scaled up to the range of x and y


def _counts(lengths: list[float], total: int) -> list[int]:
    """Points per stroke: in proportion to its length, at least two, summing to `total`."""
    whole = max(sum(lengths), 1e-9)
    counts = [max(2, round(total * n / whole)) for n in lengths]
    while sum(counts) > total:
        counts[counts.index(max(counts))] -= 1
    if sum(counts) < total:
        counts[lengths.index(max(lengths))] += total - sum(counts)
    return counts


def encode(strokes: Sequence[np.ndarray]) -> np.ndarray | None:
    """One digit's strokes -> (PEN_POINTS, PEN_FEATURES) float32; None without a point, or with
    more strokes than the sequence can give two points each."""
    kept = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes]
    kept = [s for s in kept if len(s) and np.isfinite(s).all()]
    if not kept or 2 * len(kept) > PEN_POINTS:
        return None
    every = np.concatenate(kept)
    lo, hi = every.min(axis=0), every.max(axis=0)
    centre, half = (lo + hi) / 2.0, max(float((hi - lo).max()), 1e-6) / 2.0
    arcs = [np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(s, axis=0).T)))) for s in kept]
    counts = _counts([float(a[-1]) for a in arcs], PEN_POINTS)
    points = np.empty((PEN_POINTS, 2))
    starts = np.zeros(PEN_POINTS)
    at = 0
    for stroke, arc, k in zip(kept, arcs, counts):
        # k points evenly spaced along the stroke's path (a dot: its point repeated)
        where = np.linspace(0.0, arc[-1], k)
        points[at : at + k, 0] = np.interp(where, arc, stroke[:, 0])
        points[at : at + k, 1] = np.interp(where, arc, stroke[:, 1])
        starts[at] = 1.0
        at += k
    xy = (points - centre) / half
    steps = np.diff(xy, axis=0, append=xy[-1:]) * _STEP_SCALE
    return np.concatenate([xy, steps, starts[:, None]], axis=1).astype(np.float32)


def encode_many(drawings: Sequence[Sequence[np.ndarray]]) -> tuple[np.ndarray, list[int]]:
    """Many drawings -> (M, PEN_POINTS, PEN_FEATURES) and the indices of the M that encoded."""
    rows, kept = [], []
    for i, strokes in enumerate(drawings):
        x = encode(strokes)
        if x is not None:
            rows.append(x)
            kept.append(i)
    if not rows:
        return np.zeros((0, PEN_POINTS, PEN_FEATURES), np.float32), []
    return np.stack(rows), kept


def blend(image: np.ndarray, pen: np.ndarray, weight: float) -> np.ndarray:
    """p ~ image^(1-w) * pen^w, renormalised: a product of experts, so a digit both models
    find likely wins, and either model alone can veto a reading it finds very unlikely."""
    logp = (1.0 - weight) * np.log(np.maximum(image, 1e-12)) + weight * np.log(np.maximum(pen, 1e-12))
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def strokes_in_boxes(
    strokes: Sequence[np.ndarray], boxes: Sequence[tuple[int, int, int, int]], pad: float = 0.15
) -> list[list[np.ndarray]] | None:
    """Each stroke given to the one digit box (x, y, w, h) that holds nearly all of its points.

    None when any stroke is shared by two boxes or lies in none: segmentation cut through a
    stroke (digits written in one go) or dropped it, and the pen model would read a different
    drawing from the one the image model read, so the image model answers alone.
    """
    out: list[list[np.ndarray]] = [[] for _ in boxes]
    for stroke in strokes:
        pts = np.asarray(stroke, np.float64).reshape(-1, 2)
        if not len(pts):
            continue
        inside = []
        for x, y, w, h in boxes:
            px, py = pad * w + 2, pad * h + 2
            held = (
                (pts[:, 0] >= x - px)
                & (pts[:, 0] <= x + w + px)
                & (pts[:, 1] >= y - py)
                & (pts[:, 1] <= y + h + py)
            )
            inside.append(float(held.mean()))
        best = int(np.argmax(inside))
        if inside[best] < 0.9 or sum(v >= 0.5 for v in inside) > 1:
            return None
        out[best].append(pts)
    return out
