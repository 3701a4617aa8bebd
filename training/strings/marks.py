"""Marks that are not digits, drawn with the writer's pen: what people put around an amount.

In: where the row's digits stand (row units: a digit is 1.0 high, y down, baseline at y=base)
and a random generator. Out: pen strokes of one mark, in row units.

Why: a dash or "=" closing an amount, a currency sign before it, dots and commas between its
thousands, slashes, underlines and boxes are all ink that the segmentation reader has read as
digits. The string model learns to skip them by seeing them, never labelled, in its training
strings. Each mark is shaped so that it cannot pass for a digit: bars are low (a dash is at
most FLAT of a digit's height), slashes lean at least 45 degrees and stay short, the
currency sign carries its bar.
"""

from __future__ import annotations

import numpy as np

END_MARKS = ("-", "=", "/", "//")  # after the last digit
START_MARKS = ("$", "-", "=", "/")  # before the first digit
SEPARATORS = (".", ",")  # between two digits (thousands, decimals)
LINES = ("underline", "box", "bars")  # around the whole row
PRINTED = ("box", "bars")  # printed with the form, not written: a fine pen

_S_CURVE = np.array(  # a currency sign's S, in a 0.6 x 1.0 box (y down)
    [[0.55, 0.12], [0.38, 0.02], [0.15, 0.08], [0.12, 0.3], [0.3, 0.45], [0.45, 0.55], [0.52, 0.75],
     [0.45, 0.94], [0.22, 0.98], [0.05, 0.88]]
)  # fmt: skip


def _smooth(points: np.ndarray, steps: int = 6) -> np.ndarray:
    """A Catmull-Rom curve through the points, so hand-drawn marks bend smoothly."""
    p = np.vstack([points[:1], points, points[-1:]])
    out = [p[1]]
    t = np.linspace(0, 1, steps + 1)[1:, None]
    for i in range(1, len(p) - 2):
        a, b, c, d = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.extend(
            0.5
            * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t**2 + (-a + 3 * b - 3 * c + d) * t**3)
        )
    return np.vstack(out)


def _bar(x0: float, x1: float, y: float, rng: np.random.Generator) -> np.ndarray:
    """A hand-drawn horizontal bar: a slight slope and a slight bow."""
    slope = rng.uniform(-0.08, 0.08) * (x1 - x0)
    bow = rng.uniform(-0.04, 0.04)
    xs = np.linspace(x0, x1, 8)
    t = np.linspace(0, 1, 8)
    return np.stack([xs, y + slope * (t - 0.5) + 4 * bow * t * (1 - t)], axis=1)


def mark(kind: str, x: float, base: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of a mark whose left edge is at `x` on a row whose baseline is `base`."""
    if kind in ("-", "="):
        length = rng.uniform(0.35, 1.3)
        mid = base - rng.uniform(0.3, 0.6)
        if kind == "-":
            return [_bar(x, x + length, mid, rng)]
        gap = rng.uniform(0.12, 0.3)
        return [_bar(x, x + length, mid - gap / 2, rng), _bar(x, x + length, mid + gap / 2, rng)]
    if kind in ("/", "//"):
        height = rng.uniform(0.3, 0.6)
        lean = height * rng.uniform(1.2, 2.0)  # at least 50 degrees from upright: not a 1
        top = base - rng.uniform(0.25, 0.45) - height / 2
        strokes = [np.array([[x, top + height], [x + lean, top]])]
        if kind == "//":
            step = rng.uniform(0.15, 0.3)
            strokes.append(strokes[0] + [step, 0.0])
        return strokes
    if kind == "$":
        height = rng.uniform(0.9, 1.2)
        s = _smooth(_S_CURVE) * height + [x, base - height]
        bar_x = x + 0.3 * height + rng.uniform(-0.04, 0.04)
        strokes = [s, np.array([[bar_x, base - height - 0.12], [bar_x, base + 0.12]])]
        if rng.random() < 0.3:
            strokes.append(strokes[1] + [0.1 * height, 0.0])
        return strokes
    if kind == ".":
        r = rng.uniform(0.02, 0.05)
        return [np.array([[x, base - r], [x + r, base - r]])]
    if kind == ",":
        return [np.array([[x + 0.06, base - 0.06], [x + 0.04, base + 0.06], [x - 0.02, base + 0.18]])]
    raise ValueError(f"unknown mark {kind!r}")


def lines(
    kind: str, left: float, right: float, top: float, base: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Ink around a row spanning `left`..`right` and `top`..`base`: an underline (the writer's
    pen), or a printed box or the side bars of a printed field (`PRINTED`: drawn with a fine
    pen, and reaching well above and below the digits, as a form's field does, so that no bar
    can pass for a 1)."""
    pad = rng.uniform(0.1, 0.5)
    if kind == "underline":
        y = base + rng.uniform(0.08, 0.35)
        strokes = [_bar(left - pad, right + pad, y, rng)]
        if rng.random() < 0.25:
            strokes.append(_bar(left - pad, right + pad, y + rng.uniform(0.1, 0.2), rng))
        return strokes
    y0, y1 = top - rng.uniform(0.3, 1.2), base + rng.uniform(0.3, 1.2)
    x0, x1 = left - pad, right + rng.uniform(0.1, 0.5)
    if kind == "box":
        return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])]
    if kind == "bars":
        return [np.array([[x0, y0], [x0, y1]]), np.array([[x1, y0], [x1, y1]])]
    raise ValueError(f"unknown lines {kind!r}")
