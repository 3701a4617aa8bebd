"""Segmentation, cutting: a group of ink cut into pieces along paths between its digits.

In: a `Group` and its mask. Out: `Piece`s, each with its box and its own pixels: slices about
a fifth of the row's height wide (`slice_group`, for the reading by recognition) or, without a
model, whole digits where a group is clearly too wide for one (`split_heuristic`).
Why: touching digits leave no gap between them. Cuts go near the columns with the least ink,
along paths that weave around the strokes, so that a slanted neighbour is not sliced.
"""

from __future__ import annotations

import cv2
import numpy as np

from digit_app.reading.groups import Group
from digit_app.reading.measure import bounding_box
from digit_app.reading.types import Piece

SLICE = 0.2  # slice width, relative to the row height
SEAM_STEP_COST = 0.05  # per column moved sideways in one row: seams lean only to avoid ink
SEAM_ROWS = 48  # paths are found on the group shrunk to this many rows (speed)
SEAM_REACH = 0.3  # a path strays at most this many slice widths from its cut's column


def slice_group(g: Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Cut a group at its ink minima into slices of about SLICE * ref, or keep it whole."""
    if g.w <= 0.6 * ref:
        return _whole(g, gmask)
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    k = max(2, int(round(g.w / (SLICE * ref))))
    return pieces_between(g, gmask, seams(gmask, cut_columns(prof, k), g.w / k))


def split_heuristic(g: Group, gmask: np.ndarray, ref: float) -> list[Piece]:
    """Without a model: split a group only when it is clearly too wide for one digit."""
    height = max(float(g.h), ref)
    if g.w <= 1.15 * height:
        return _whole(g, gmask)
    prof = np.convolve(gmask.sum(axis=0).astype(np.float64), np.ones(3) / 3.0, mode="same")
    k = max(2, int(round(g.w / (0.7 * height))))
    return pieces_between(g, gmask, seams(gmask, cut_columns(prof, k), g.w / k))


def seams(gmask: np.ndarray, cuts: list[int], step: float) -> list[np.ndarray]:
    """Each inner cut as a top-to-bottom path (one column per row) crossing the least ink.

    Neighbouring digits lean into each other's columns in slanted or overlapping writing, so
    a straight vertical cut slices one of them; a path can weave between them, and cross a
    touching stroke where it is thinnest. Each path stays within 0.3 slice of its cut's
    column and moves at most one column per row; paths are kept from crossing. All paths of
    a group are found together, on the mask shrunk to at most SEAM_ROWS rows.
    """
    h, w = gmask.shape
    inner = cuts[1:-1]
    if not inner:
        return [np.zeros(h, np.int32), np.full(h, w, np.int32)]
    f = min(1.0, SEAM_ROWS / h)
    small = gmask.astype(np.float32)
    if f < 1.0:
        small = cv2.resize(small, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    hs, ws = small.shape
    half = max(1, int(SEAM_REACH * step * f))
    starts = np.array([round(c * f) - half for c in inner])
    cols = starts[:, None] + np.arange(2 * half + 1)[None, :]  # (seams, window)
    inside = (cols >= 1) & (cols < ws - 1)
    # Outside the group: far dearer than ink, but finite, so that every window has a path.
    cost = np.where(inside[:, None, :], small[:, np.clip(cols, 0, ws - 1)].transpose(1, 0, 2), 1e6)
    cost = cost + 1e-3 * np.abs(np.arange(2 * half + 1) - half)  # ties: the straightest path
    offsets = _cheapest_paths(cost.astype(np.float32))  # (seams, rows), columns in the window
    rows = np.minimum((np.arange(h) * f).astype(np.int64), hs - 1)
    bounds = [np.zeros(h, np.int32)]
    for k in range(len(inner)):
        path = np.rint((starts[k] + offsets[k, rows] + 0.5) / f - 0.5).astype(np.int32)
        bounds.append(np.maximum(np.clip(path, 1, w - 1), bounds[-1]))
    bounds.append(np.full(h, w, np.int32))
    return bounds


def cut_columns(prof: np.ndarray, pieces: int) -> list[int]:
    """Column indices splitting a profile into `pieces` parts at its minima near even spacing."""
    w = len(prof)
    cuts = [0]
    step = w / pieces
    for k in range(1, pieces):
        centre = k * step
        lo = int(max(cuts[-1] + 0.4 * step, centre - 0.35 * step))
        hi = int(min(w - 0.4 * step, centre + 0.35 * step))
        if hi <= lo:
            continue
        seg = prof[lo:hi]
        # Least ink, and among near-ties the column closest to the expected position.
        cost = seg + 0.05 * max(seg.max(), 1.0) * np.abs(np.arange(lo, hi) - centre) / max(step, 1)
        cuts.append(lo + int(np.argmin(cost)))
    cuts.append(w)
    return cuts


def pieces_between(g: Group, gmask: np.ndarray, bounds: list[np.ndarray]) -> list[Piece]:
    """The group's ink between consecutive paths, as pieces (a pixel on a path goes right)."""
    cols = np.arange(gmask.shape[1])[None, :]
    out = []
    for left, right in zip(bounds[:-1], bounds[1:]):
        part = gmask & (cols >= left[:, None]) & (cols < right[:, None])
        bb = bounding_box(part)
        if bb is None:
            continue
        x, y, w, h = bb
        out.append(Piece((g.x0 + x, g.y0 + y, w, h), part[y : y + h, x : x + w]))
    return out


def union(pieces: list[Piece]) -> Piece:
    """Several pieces (consecutive slices) as one, their pixels together."""
    box = union_box(pieces)
    x0, y0 = box[0], box[1]
    m = np.zeros((box[3], box[2]), bool)
    for p in pieces:
        x, y, w, h = p.box
        m[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= p.mask
    return Piece(box, m)


def union_box(pieces: list[Piece]) -> tuple[int, int, int, int]:
    """The box (x, y, w, h) holding all the pieces, without joining their masks."""
    x0 = min(p.box[0] for p in pieces)
    y0 = min(p.box[1] for p in pieces)
    x1 = max(p.box[0] + p.box[2] for p in pieces)
    y1 = max(p.box[1] + p.box[3] for p in pieces)
    return (x0, y0, x1 - x0, y1 - y0)


def _whole(g: Group, gmask: np.ndarray) -> list[Piece]:
    """The group as one piece."""
    h, w = gmask.shape
    return pieces_between(g, gmask, [np.zeros(h, np.int32), np.full(h, w, np.int32)])


def _cheapest_paths(cost: np.ndarray) -> np.ndarray:
    """For each (rows, cols) cost plane, the column per row of its cheapest 8-connected path."""
    n, h, w = cost.shape
    acc = cost[:, 0].copy()
    back = np.zeros((n, h, w), np.int8)
    pad = np.full((n, 1), np.inf, np.float32)
    for y in range(1, h):
        left = np.concatenate((pad, acc[:, :-1]), axis=1) + SEAM_STEP_COST
        right = np.concatenate((acc[:, 1:], pad), axis=1) + SEAM_STEP_COST
        three = np.stack((left, acc, right))
        choice = np.argmin(three, axis=0)
        acc = np.take_along_axis(three, choice[None], axis=0)[0] + cost[:, y]
        back[:, y] = choice - 1
    path = np.empty((n, h), np.int64)
    path[:, -1] = np.argmin(acc, axis=1)
    idx = np.arange(n)
    for y in range(h - 1, 0, -1):
        path[:, y - 1] = path[:, y] + back[idx, y, path[:, y]]
    return path
