"""Pen trajectories as the digits of a cursive number: each digit scaled to the row's height,
and the pen's path from one digit's end to the next one's start drawn as a ligature.

In: a pen sample's strokes (y down, the set's own units). Out: the same drawing in row units
(a digit is 1.0 high, its box's top-left at the origin), and ligatures between placed digits.

Why: people write amounts fast and without lifting the pen, so digits touch and are joined by
strokes that are not digits. A pen trajectory knows where the pen ends and starts again, so
the join can be drawn where a writer's pen really goes. A ligature is one smooth arc, kept
low: its path spans at most LIGATURE_RISE of a digit's height, so with the boldest pen the
synthetic strings use (MAX_PEN) its ink stays lower than the reading path's mark rule
(`digit_app.reading.groups.FLAT`): drawn alone, it is a mark, never a digit. A join that would
have to climb higher is written with the pen lifted instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_PEN = 0.15  # the boldest pen of the synthetic strings, in digit heights
# A ligature's path spans at most this share of a digit's height vertically, so that with the
# pen its ink is at most FLAT (0.45) high: what the reading path calls a mark, not a digit.
LIGATURE_RISE = 0.3
LIGATURE_BACK = 0.15  # digit heights the pen may move back leftwards to the next digit's start
LIGATURE_LENGTH = 1.3  # digit heights: a longer way between two digits is made with the pen up
LIGATURE_SAG = (-0.08, 0.22)  # the arc's dip below (positive) or bulge above its chord, digit heights
LIGATURE_POINTS = 12


def unit_strokes(strokes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The drawing scaled to a height of 1 with its box's top-left at (0, 0).

    A drawing much wider than high (a flat 7, a sloppy 2) is scaled by half its width
    instead, so it does not become a giant."""
    pts = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s)]
    every = np.concatenate(pts)
    lo = every.min(axis=0)
    w, h = np.ptp(every, axis=0)
    scale = 1.0 / max(h, 0.5 * w, 1e-6)
    return [(s - lo) * scale for s in pts]


def ligature(
    end: np.ndarray, start: np.ndarray, height: float, rng: np.random.Generator
) -> np.ndarray | None:
    """The pen's path from `end` (the last point of one digit) to `start` (the first of the
    next) as a quadratic arc, or None when the pen should be lifted there instead: the join
    climbs more than LIGATURE_RISE, goes back left more than LIGATURE_BACK or is longer than
    LIGATURE_LENGTH (all in units of the digits' `height`)."""
    end, start = np.asarray(end, np.float64), np.asarray(start, np.float64)
    dx, dy = start - end
    if abs(dy) > LIGATURE_RISE * height or dx < -LIGATURE_BACK * height:
        return None
    if np.hypot(dx, dy) > LIGATURE_LENGTH * height:
        return None
    # The dip may take the arc at most to LIGATURE_RISE from the higher of its two ends; a
    # quadratic's lowest point is at most half-way to its control point.
    room = LIGATURE_RISE * height - abs(dy)
    sag = float(np.clip(rng.uniform(*LIGATURE_SAG) * height, -room, room))
    control = (end + start) / 2 + np.array([0.0, 2.0 * sag])
    t = np.linspace(0.0, 1.0, LIGATURE_POINTS)[:, None]
    return (1 - t) ** 2 * end + 2 * (1 - t) * t * control + t**2 * start


def vertical_extent(points: np.ndarray) -> float:
    return float(np.ptp(np.asarray(points)[:, 1]))
