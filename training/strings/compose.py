"""One synthetic number: digits from a pool laid out as people write them, with marks, on paper.

In: a `Pool` and a random generator. Out: `Synth`, a grayscale picture as the app receives it,
the digit string it shows (the label), and how it was made (each digit's box, the ligatures,
the marks) so tests can check that the label is exactly the digits drawn.

Three kinds of strings, all with 1-8 digits:
- cursive numbers from pen trajectories on paper: one writer's drawings, varied (turned,
  slanted, resampled), set on a drifting baseline with spacing from apart to overlapping,
  joined by ligatures (`pen.ligature`), leaning as a whole, drawn with a pen of random width;
- the same on the Draw page's canvas: white strokes on black, redrawn with the page's own pen
  (`digit_app.strokes.render_strokes`);
- digit pictures (MNIST, scans, optdigits, mfeat) placed apart, touching or overlapping.
Any of them may carry marks that are not digits (`marks`), and paper strings get paper,
light, blur and JPEG (`paper`).

Why: the string model learns to read whole numbers only from these (the cheques may not be
learned from), so they must hold what real numbers hold: touching and joined digits, runs of
zeros, marks around the amount, and many hands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from digit_app.strokes import render_strokes
from training.render import varied
from training.strings import marks as mk
from training.strings.paper import on_canvas, on_paper
from training.strings.pen import MAX_PEN, ligature, unit_strokes
from training.strings.sources import Pool

MAX_DIGITS = 8
KINDS = ("pen", "canvas", "glyph")  # cursive on paper, on the Draw page's canvas, digit pictures
KIND_WEIGHTS = (0.45, 0.2, 0.35)
CANVAS = 280  # the Draw page's canvas side (px)


@dataclass
class Style:
    """How one writer sets a number down (all lengths in digit heights)."""

    gap: float  # mean space between neighbours; negative: they overlap
    drift: float  # baseline rise per digit (y down: negative climbs)
    slant: float  # lean of the whole row: x moves right by this per unit above the baseline
    joins: float  # chance that the pen stays down between two pen digits (a ligature)
    marks: float  # chance that the number carries marks that are not digits
    scale: float  # px per digit height on paper


def random_style(kind: str, rng: np.random.Generator) -> Style:
    return Style(
        gap=rng.uniform(-0.1, 0.45),
        drift=rng.uniform(-0.06, 0.06),
        slant=rng.uniform(-0.3, 0.45),
        joins=0.0 if rng.random() < 0.3 else rng.uniform(0.4, 1.0),
        marks={"pen": 0.5, "canvas": 0.2}.get(kind, 1.0),
        scale=rng.uniform(16, 56),
    )


@dataclass
class Synth:
    gray: np.ndarray  # uint8 picture as the app receives it
    label: str  # the digits drawn, left to right
    kind: str  # one of KINDS
    digit_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # row units
    sources: list[int] = field(default_factory=list)  # each digit's index in the pool (pen or its set)
    ligatures: list[np.ndarray] = field(default_factory=list)  # row units, before the lean
    marks: list[str] = field(default_factory=list)


@dataclass
class _Placed:
    label: int
    x: float  # left edge, row units (a digit is about 1.0 high)
    top: float
    size: float  # height
    width: float
    strokes: list[np.ndarray] | None = None  # placed, row units
    glyph: np.ndarray | None = None  # uint8 ink


def digit_labels(rng: np.random.Generator) -> list[int]:
    """1-8 digits; a third of the numbers end in a run of zeros, as amounts often do."""
    n = int(rng.integers(1, MAX_DIGITS + 1))
    labels = [int(v) for v in rng.integers(0, 10, n)]
    if n > 1 and rng.random() < 0.33:
        zeros = int(rng.integers(1, n))
        labels[n - zeros :] = [0] * zeros
        labels[0] = labels[0] or int(rng.integers(1, 10))
    return labels


def _layout(shapes: list[tuple[int, float, object]], style: Style, rng: np.random.Generator) -> list[_Placed]:
    """Digits side by side on a drifting baseline; the gap between neighbours ranges from a
    wide space to an overlap, around the writer's own mean."""
    placed: list[_Placed] = []
    for i, (label, aspect, thing) in enumerate(shapes):
        size = rng.uniform(0.88, 1.12)
        width = aspect * size
        x = 0.0
        if placed:
            gap = max(rng.normal(style.gap, 0.06), -0.2 * min(width, placed[-1].width))
            x = placed[-1].x + placed[-1].width + gap
        base = 1.0 + style.drift * i + rng.normal(0, 0.03)
        p = _Placed(label, x, base - size, size, width)
        if isinstance(thing, list):
            p.strokes = [s * size + [x, base - size] for s in thing]
        else:
            p.glyph = thing
        placed.append(p)
    return placed


def _ligatures(placed: list[_Placed], style: Style, rng: np.random.Generator) -> list[np.ndarray]:
    """The pen's way between neighbours where the writer did not lift it."""
    out = []
    for a, b in zip(placed, placed[1:]):
        if rng.random() < style.joins:
            arc = ligature(a.strokes[-1][-1], b.strokes[0][0], min(a.size, b.size), rng)
            if arc is not None:
                out.append(arc)
    return out


def _marks(
    placed: list[_Placed], rng: np.random.Generator, printed_ok: bool = True
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Non-digit ink around and between the digits, in row units: (written strokes, printed
    strokes, names). Each kind of mark comes by its own chance, so a number may carry none or
    several; printed lines only where there is paper (`printed_ok`)."""
    strokes: list[np.ndarray] = []
    printed: list[np.ndarray] = []
    names: list[str] = []
    base = float(np.mean([p.top + p.size for p in placed]))
    top = min(p.top for p in placed)
    left, right = placed[0].x, placed[-1].x + placed[-1].width
    if rng.random() < 0.35:
        kind = str(rng.choice(mk.END_MARKS))
        strokes += mk.mark(kind, right + rng.uniform(0.1, 0.5), base, rng)
        names.append(kind)
    if rng.random() < 0.2:
        kind = str(rng.choice(mk.START_MARKS))
        width = 0.6 if kind == "$" else 1.3
        strokes += mk.mark(kind, left - width - rng.uniform(0.1, 0.4), base, rng)
        names.append(kind)
    if len(placed) >= 4 and rng.random() < 0.2:
        kind = str(rng.choice(mk.SEPARATORS))
        for i in range(len(placed) - 3, 0, -3):  # between thousands
            a, b = placed[i - 1], placed[i]
            strokes += mk.mark(kind, (a.x + a.width + b.x) / 2, a.top + a.size, rng)
            names.append(kind)
    if rng.random() < 0.25:
        kind = str(rng.choice(mk.LINES, p=[0.5, 0.25, 0.25]))
        if kind in mk.PRINTED and not printed_ok:
            kind = "underline"
        (printed if kind in mk.PRINTED else strokes).extend(mk.lines(kind, left, right, top, base, rng))
        names.append(kind)
    return strokes, printed, names


def _lean(strokes: list[np.ndarray], slant: float, base: float) -> list[np.ndarray]:
    """The whole row leaning: x moves right by `slant` per unit above the baseline."""
    return [s + np.stack([slant * (base - s[:, 1]), np.zeros(len(s))], axis=1) for s in strokes]


def _pen_picture(
    strokes: list[np.ndarray], printed: list[np.ndarray], kind: str, style: Style, rng: np.random.Generator
) -> np.ndarray:
    """Row-unit strokes drawn: on the Draw page's canvas with its own pen, or on paper with a
    random pen (and the printed lines with a fine one)."""
    every = np.concatenate(strokes + printed)
    lo, hi = every.min(axis=0), every.max(axis=0)
    if kind == "canvas":
        span = np.maximum(hi - lo, 1e-6)
        scale = min(rng.uniform(40, 110), rng.uniform(0.55, 0.95) * CANVAS / span[0], 0.9 * CANVAS / span[1])
        placed = [(s - lo) * scale for s in strokes]
        # Only the drawing's part of the canvas, with a blank edge: the page reads its ink box,
        # and the pen's width comes from the strokes, so the picture read is the same.
        size = np.ceil(span * scale) + 24
        ink = render_strokes([p + 12 for p in placed], (int(size[1]), int(size[0])))
        return on_canvas(ink / 255.0)
    margin = rng.uniform(0.1, 0.8, 4) * style.scale + 2
    h = int(math.ceil((hi[1] - lo[1]) * style.scale + margin[1] + margin[3]))
    w = int(math.ceil((hi[0] - lo[0]) * style.scale + margin[0] + margin[2]))
    pen = max(1.0, style.scale * rng.uniform(0.05, MAX_PEN))
    ink = render_strokes([(s - lo) * style.scale + margin[:2] for s in strokes], (h, w), width=pen)
    if printed:
        fine = render_strokes(
            [(s - lo) * style.scale + margin[:2] for s in printed], (h, w), width=max(1.0, 0.4 * pen)
        )
        ink = np.maximum(ink, fine)
    return on_paper(ink.astype(np.float32) / 255.0, rng)


def _glyph_picture(
    placed: list[_Placed],
    extra: list[np.ndarray],
    printed: list[np.ndarray],
    style: Style,
    rng: np.random.Generator,
) -> np.ndarray:
    """Digit pictures pasted at their places (ink over ink where they overlap), marks drawn,
    the row leaned, then put on paper."""
    scale = style.scale
    corners = np.array([(p.x, p.top, p.x + p.width, p.top + p.size) for p in placed]).reshape(-1, 2)
    every = np.concatenate([corners, *extra, *printed])
    lo, hi = every.min(axis=0), every.max(axis=0)
    margin = rng.uniform(0.1, 0.8, 4) * scale + 2
    h = int(math.ceil((hi[1] - lo[1]) * scale + margin[1] + margin[3]))
    w = int(math.ceil((hi[0] - lo[0]) * scale + margin[0] + margin[2]))
    ink = np.zeros((h, w), np.float32)
    for p in placed:
        gw, gh = max(1, round(p.width * scale)), max(1, round(p.size * scale))
        enlarge = gh > p.glyph.shape[0]
        g = cv2.resize(
            p.glyph.astype(np.float32) / 255.0,
            (gw, gh),
            interpolation=cv2.INTER_LINEAR if enlarge else cv2.INTER_AREA,
        )
        x0, y0 = round((p.x - lo[0]) * scale + margin[0]), round((p.top - lo[1]) * scale + margin[1])
        region = ink[y0 : y0 + gh, x0 : x0 + gw]
        np.maximum(region, g[: region.shape[0], : region.shape[1]], out=region)
    pen = max(1.0, 0.1 * scale * rng.uniform(0.7, 1.3))
    for lines, width in ((extra, pen), (printed, max(1.0, 0.4 * pen))):
        if lines:
            drawn = render_strokes([(s - lo) * scale + margin[:2] for s in lines], (h, w), width=width)
            np.maximum(ink, drawn.astype(np.float32) / 255.0, out=ink)
    if style.slant:
        pad = int(abs(style.slant) * h) + 1
        shear = np.float32([[1, -style.slant, max(0.0, style.slant) * h], [0, 1, 0]])
        ink = cv2.warpAffine(ink, shear, (w + pad, h), flags=cv2.INTER_LINEAR)
    return on_paper(ink, rng)


def pick_kind(pool: Pool, rng: np.random.Generator, weights: tuple[float, ...] = KIND_WEIGHTS) -> str:
    """A kind of string by `weights` (of KINDS), among those the pool has digits for."""
    usable = [(k == "glyph" and bool(pool.glyph_sets())) or (k != "glyph" and pool.has_pen()) for k in KINDS]
    w = np.array([wk if ok else 0.0 for wk, ok in zip(weights, usable)], np.float64)
    if w.sum() <= 0:
        raise ValueError("the pool has no digits for the kinds of strings asked for")
    return str(rng.choice(KINDS, p=w / w.sum()))


def make_string(
    pool: Pool,
    rng: np.random.Generator,
    kind: str | None = None,
    weights: tuple[float, ...] = KIND_WEIGHTS,
    style: Style | None = None,
    labels: list[int] | None = None,
) -> Synth:
    """One random number from the pool's digits, as a picture, with its label (the digits
    drawn, left to right; ligatures and marks are never part of it)."""
    kind = kind or pick_kind(pool, rng, weights)
    style = style or random_style(kind, rng)
    labels = labels or digit_labels(rng)
    ligs: list[np.ndarray] = []
    extra: list[np.ndarray] = []
    printed: list[np.ndarray] = []
    names: list[str] = []
    if kind == "glyph":
        source = str(rng.choice(pool.glyph_sets()))
        sources = pool.glyph_digits(source, labels, rng)
        inks = [pool.glyphs[source].inks[i] for i in sources]
        placed = _layout([(k, g.shape[1] / g.shape[0], g) for k, g in zip(labels, inks)], style, rng)
        if rng.random() < style.marks:
            extra, printed, names = _marks(placed, rng)
        gray = _glyph_picture(placed, extra, printed, style, rng)
    else:
        sources = pool.pen_digits(labels, rng)
        drawings = [unit_strokes(varied(pool.pen[i].strokes, rng)) for i in sources]
        placed = _layout(
            [(k, float(np.concatenate(d)[:, 0].max()), d) for k, d in zip(labels, drawings)], style, rng
        )
        ligs = _ligatures(placed, style, rng)
        if rng.random() < style.marks:
            extra, printed, names = _marks(placed, rng, printed_ok=kind != "canvas")
        base = float(np.mean([p.top + p.size for p in placed]))
        strokes = [s for p in placed for s in p.strokes] + ligs + extra
        gray = _pen_picture(_lean(strokes, style.slant, base), printed, kind, style, rng)
    boxes = [(p.x, p.top, p.width, p.size) for p in placed]
    return Synth(gray, "".join(str(p.label) for p in placed), kind, boxes, sources, ligs, names)
