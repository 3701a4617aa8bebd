"""Segmentation: a cleaned ink mask holding a row of digits -> one piece per digit, left to right.

In: the bool mask (and, to read by recognition, the ink, the model and its checker). Out:
`Piece`s left to right (`segment_pieces`), or just their boxes (`segment`).
Why: the model reads one digit at a time. Connected components; dots and specks dropped;
pieces of one digit merged and marks dropped (`groups`); then every group that may hold
several digits is split: with a model, the way it reads most confidently (`by_recognition`);
without one, only where it is clearly too wide for one digit (`cuts.split_heuristic`). The
image is labelled once, by ink extraction where it already was (`InkInfo.components`).
"""

from __future__ import annotations

import numpy as np

from digit_app.reading.by_recognition import read_row
from digit_app.reading.cuts import split_heuristic
from digit_app.reading.groups import FLAT, Group, label_mask, only_bars, reference_height, same_digit
from digit_app.reading.measure import label_components
from digit_app.reading.types import Checker, Piece, Scorer


def segment(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the digits in a cleaned ink mask, left to right."""
    return [p.box for p in segment_pieces(mask)]


def segment_pieces(
    mask: np.ndarray,
    ink: np.ndarray | None = None,
    scorer: Scorer | None = None,
    components: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None,
    temperature: float = 1.0,
    checker: Checker | None = None,
) -> list[Piece]:
    """The digits of a cleaned ink mask, left to right.

    Connected components; dots and specks dropped; pieces of one digit merged; leftovers
    flatter than a digit (dashes, remains of an underline) dropped; groups too wide for one
    digit split at the columns with the least ink. With a `scorer` (the model), a group that
    may hold several digits is split the way the model reads most confidently.
    `components`: the mask's labelling when already done (`InkInfo.components`).
    """
    if components is None:
        n, labels, stats = label_components(np.asarray(mask).astype(bool))
        kept = np.ones(n, bool)
    else:
        n, labels, stats, kept = components
    groups = [
        Group(int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3]), [i], int(s[4]))
        for i, s in enumerate(stats)
        if i > 0 and kept[i]
    ]
    if not groups:
        return []
    ref = reference_height(groups)
    # Dots and specks (decimal points, dust): small in both directions.
    groups = [g for g in groups if max(g.w, g.h) >= 0.3 * ref]
    if not groups:
        return []
    # Merge pieces of one digit: strong overlap in x (two strokes of a 4, a 5's flag, broken strokes).
    groups.sort(key=lambda g: g.x0)
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if same_digit(groups[i], groups[j], ref):
                    groups[i] = groups[i].merged(groups[j])
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    ref = reference_height(groups)
    # Leftovers flatter than a digit (dashes, underlines' remains), and groups made only of
    # low bars: an "=" closing an amount is tall as a pair, yet neither of its bars is.
    groups = [g for g in groups if g.h >= FLAT * ref and not only_bars(g, stats, ref)]
    groups.sort(key=lambda g: g.x0)
    masks = [label_mask(labels[g.y0 : g.y1, g.x0 : g.x1], g.labels) for g in groups]
    if scorer is not None and ink is not None:
        pieces = read_row(groups, masks, ref, ink, scorer, temperature, checker)
    else:
        pieces = [p for g, m in zip(groups, masks) for p in split_heuristic(g, m, ref)]
    pieces.sort(key=lambda p: p.box[0] + p.box[2] / 2.0)
    return pieces
