"""Segmentation, first step: the pieces of ink gathered into groups, one per digit or per run
of touching digits.

In: the connected components of a cleaned mask (`measure.label_components`). Out: `Group`s (a
box, the components it holds, its ink area) and the rules `segment.segment_pieces` applies
to them: the row's reference height, which pieces are one digit (a 4 in two strokes, a 5's
flag, a broken stroke), and which are marks rather than digits (a dash, an "=").
Why: a piece of ink is neither always a digit nor always part of one; the rules are relative
to the row's own height (`FLAT`), so that they hold at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAT = 0.45  # ink lower than this share of the digits' height is a dash or a mark, not a digit


@dataclass
class Group:
    """Pieces of ink taken as one digit, or as one run of touching digits: box, labels, area."""

    x0: int
    y0: int
    x1: int  # exclusive
    y1: int
    labels: list[int]
    area: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def merged(self, other: Group) -> Group:
        return Group(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            self.labels + other.labels,
            self.area + other.area,
        )


def reference_height(groups: list[Group]) -> float:
    """Typical digit height: the area-weighted upper heights of the pieces."""
    hs = np.array([g.h for g in groups], float)
    areas = np.array([g.area for g in groups], float)
    order = np.argsort(hs)
    cum = np.cumsum(areas[order]) / areas.sum()
    return float(hs[order][np.searchsorted(cum, 0.5)])


def same_digit(a: Group, b: Group, ref: float) -> bool:
    """Two pieces of one digit: strongly overlapping in x, or a stem just beside an open 4."""
    union = a.merged(b)
    overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    if overlap >= 0.5 * min(a.w, b.w) and union.w <= 1.1 * max(ref, union.h):
        return True
    # The stroke of a 4 drawn after its open "L", not quite touching it: a tiny gap, a digit-
    # shaped union, and (unlike "11") pieces that end at clearly different heights.
    gap = -overlap
    narrow = a if a.w < b.w else b
    return (
        gap <= max(2.0, 0.1 * ref)
        and union.w <= 0.85 * union.h
        and narrow.w <= 0.4 * narrow.h
        and max(abs(a.y1 - b.y1), abs(a.y0 - b.y0)) >= 0.2 * union.h
    )


def only_bars(g: Group, stats: np.ndarray, ref: float) -> bool:
    """Whether every stroke of a group is a low bar (an "=", a long "-"): lower than FLAT of
    the row and at least twice as wide as high. A digit broken into low pieces has some that
    are not bars, and stays."""
    return all(stats[i][3] < FLAT * ref and stats[i][2] >= 2 * stats[i][3] for i in g.labels)


def label_mask(labels: np.ndarray, wanted: list[int]) -> np.ndarray:
    """`np.isin(labels, wanted)`, faster for the usual one or few labels."""
    if len(wanted) > 4:
        return np.isin(labels, wanted)
    out = labels == wanted[0]
    for label in wanted[1:]:
        out |= labels == label
    return out
