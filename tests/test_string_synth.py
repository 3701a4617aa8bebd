"""The string reader's synthetic numbers: the label is exactly the digits drawn, in order;
ligatures join neighbours low and smoothly and never add a digit; marks are never labelled;
the rows are what the app would feed the model."""

from __future__ import annotations

import numpy as np
import pytest

from digit_app.reading.groups import FLAT
from digit_app.reading.pipeline import preprocess_multi
from digit_app.string_input import HEIGHT, STRIDE, prepare
from digit_app.strokes import render_strokes
from training.strings.compose import Style, make_string
from training.strings.dataset import batches, make_rows
from training.strings.pen import LIGATURE_RISE, MAX_PEN, ligature, vertical_extent
from training.strings.sources import Glyphs, PenDigit, Pool

APART = Style(gap=0.6, drift=0.0, slant=0.0, joins=0.0, marks=0.0, scale=60.0)


def _bars() -> Glyphs:
    """Stand-in digit pictures: a bar whose width encodes the label (a fifth of its height per step)."""
    inks, labels = [], []
    for k in range(10):
        for _ in range(3):
            inks.append(np.full((40, 8 * (k + 1)), 255, np.uint8))
            labels.append(k)
    return Glyphs(inks, np.array(labels), [""] * len(inks))


def _pen_pool() -> Pool:
    """Pen drawings of every digit by two writers: digit k is a loop-free zigzag of k+2 points."""
    rng = np.random.default_rng(0)
    pen = []
    for writer in ("a", "b"):
        for k in range(10):
            xs = np.linspace(0, 0.6, k + 2)
            ys = np.where(np.arange(k + 2) % 2 == 0, 0.0, 1.0) + rng.uniform(-0.02, 0.02, k + 2)
            pen.append(PenDigit(k, writer, [np.stack([xs, ys], axis=1)]))
    return Pool(pen, {"bars": _bars()})


def _read_bars(gray: np.ndarray) -> str:
    """The bars of a picture read back left to right: each run of ink columns' width over its
    height -> digit (the layout scales both alike)."""
    ink = gray < 128
    edges = np.flatnonzero(np.diff(np.r_[0, ink.any(axis=0).astype(int), 0]))
    out = ""
    for a, b in zip(edges[::2], edges[1::2]):
        rows = np.flatnonzero(ink[:, a:b].any(axis=1))
        out += str(int(round(5 * (b - a) / (rows[-1] - rows[0] + 1))) - 1)
    return out


def test_the_label_is_the_digits_drawn_left_to_right(monkeypatch):
    import training.strings.compose as compose

    # The ink as drawn, dark on white: the paper's looks are pixel effects, the digits are the layout's.
    monkeypatch.setattr(compose, "on_paper", lambda ink, rng: np.round(255 * (1 - ink)).astype(np.uint8))
    pool = Pool([], {"bars": _bars()})
    rng = np.random.default_rng(1)
    for _ in range(40):
        s = make_string(pool, rng, kind="glyph", style=APART)
        assert _read_bars(s.gray) == s.label, "the picture shows other digits than the label says"
        assert 1 <= len(s.label) <= 8 and s.marks == []


def test_every_digit_is_a_drawing_of_its_label_by_one_writer():
    pool = _pen_pool()
    rng = np.random.default_rng(2)
    for kind in ("pen", "canvas"):
        for _ in range(30):
            s = make_string(pool, rng, kind=kind)
            drawn = [pool.pen[i] for i in s.sources]
            assert "".join(str(d.label) for d in drawn) == s.label
            assert len({d.writer for d in drawn}) == 1
            lefts = [b[0] for b in s.digit_boxes]
            assert lefts == sorted(lefts), "digits are not laid out left to right"


def test_ligatures_join_neighbours_low_and_in_one_arc():
    pool = _pen_pool()
    rng = np.random.default_rng(3)
    joined = 0
    for _ in range(200):
        style = Style(
            gap=float(rng.uniform(-0.15, 0.45)), drift=0.03, slant=0.2, joins=1.0, marks=0.0, scale=30.0
        )
        s = make_string(pool, rng, kind="pen", style=style)
        assert len(s.ligatures) <= len(s.label) - 1
        for arc in s.ligatures:
            joined += 1
            height = 1.12  # the tallest a digit is drawn (`_layout`)
            assert vertical_extent(arc) <= LIGATURE_RISE * height + 1e-9
            dx = np.diff(arc[:, 0])
            assert (dx >= -1e-12).all() or (dx <= 1e-12).all(), "a ligature turned back on itself"
    assert joined > 50


def test_a_join_that_would_stand_tall_is_made_with_the_pen_lifted():
    rng = np.random.default_rng(4)
    assert ligature(np.array([0.5, 1.0]), np.array([0.7, 0.1]), 1.0, rng) is None  # climbs a whole digit
    assert ligature(np.array([0.5, 0.5]), np.array([-0.2, 0.5]), 1.0, rng) is None  # far back left
    arc = ligature(np.array([0.5, 0.9]), np.array([0.8, 0.7]), 1.0, rng)
    assert arc is not None and np.allclose(arc[0], [0.5, 0.9]) and np.allclose(arc[-1], [0.8, 0.7])


def test_a_ligature_alone_is_not_a_digit_to_the_reading_path():
    """Drawn beside a digit as tall as the row with the boldest pen, the steepest ligature
    allowed is low enough that the reading path calls it a mark (FLAT), never a digit."""
    assert LIGATURE_RISE + MAX_PEN <= FLAT
    rng = np.random.default_rng(5)
    arc = ligature(np.array([1.0, LIGATURE_RISE]), np.array([2.0, 0.0]), 1.0, rng)
    t = np.linspace(0, 2 * np.pi, 40)
    zero = np.stack([0.35 + 0.35 * np.cos(t), 0.5 + 0.5 * np.sin(t)], axis=1)
    one = np.array([[2.6, 0.0], [2.6, 1.0]])
    strokes = [p * 100 + 40 for p in (zero, arc + [0.05, 0.0], one)]
    crops = preprocess_multi(render_strokes(strokes, (200, 400), width=100 * MAX_PEN))
    assert [c.box[0] < 120 for c in crops] == [True, False]  # the 0 and the 1, no digit between


def test_marks_are_drawn_but_never_labelled():
    pool = _pen_pool()
    rng = np.random.default_rng(6)
    marked = 0
    for _ in range(60):
        style = Style(gap=0.3, drift=0.0, slant=0.1, joins=0.5, marks=1.0, scale=30.0)
        s = make_string(pool, rng, kind="pen", style=style)
        plain = make_string(
            pool, np.random.default_rng(0), kind="pen", style=style, labels=[int(c) for c in s.label]
        )
        assert s.label == plain.label and s.label.isdigit()
        marked += bool(s.marks)
    assert marked > 20


def test_the_same_seed_makes_the_same_number():
    pool = _pen_pool()
    a = make_string(pool, np.random.default_rng(7))
    b = make_string(pool, np.random.default_rng(7))
    assert a.label == b.label and np.array_equal(a.gray, b.gray)


@pytest.mark.parametrize("kind", ["pen", "canvas", "glyph"])
def test_rows_are_what_the_app_feeds_the_model(kind):
    pool = _pen_pool()
    rows = make_rows(
        pool, seed=8, n=6, weights={"pen": (1, 0, 0), "canvas": (0, 1, 0), "glyph": (0, 0, 1)}[kind]
    )
    rng = np.random.default_rng(8)
    for row, label in zip(rows.rows, rows.labels):
        s = make_string(pool, rng, weights={"pen": (1, 0, 0), "canvas": (0, 1, 0), "glyph": (0, 0, 1)}[kind])
        while prepare(s.gray) is None:  # `make_rows` skips numbers without ink the same way
            s = make_string(
                pool, rng, weights={"pen": (1, 0, 0), "canvas": (0, 1, 0), "glyph": (0, 0, 1)}[kind]
            )
        want = np.round(prepare(s.gray).row * 255).astype(np.uint8)
        assert label == s.label and np.array_equal(row, want)
        assert row.shape[0] == HEIGHT and row.shape[1] % STRIDE == 0


def test_batches_cover_every_row_once_with_their_labels():
    pool = _pen_pool()
    rows = make_rows(pool, seed=9, n=50)
    seen = []
    for x, y, lengths, frames in batches(rows, 8, np.random.default_rng(0)):
        assert x.shape[1] == HEIGHT and x.shape[2] % STRIDE == 0 and (frames == x.shape[2] // STRIDE).all()
        for row_labels, n in zip(y, lengths):
            seen.append("".join(str(v) for v in row_labels[:n]))
            assert (row_labels[n:] == -1).all()
    assert sorted(seen) == sorted(rows.labels)
