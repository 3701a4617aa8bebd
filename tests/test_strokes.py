"""Canvas drawings read back as strokes and redrawn with an MNIST-like pen (digit_app.strokes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from digit_app.imageio import canvas_to_gray
from digit_app.reading.measure import stroke_width
from digit_app.reading.normalize import STROKE_TARGET
from digit_app.reading.pipeline import preprocess_single
from digit_app.strokes import canvas_gray, pen_width, render_strokes, strokes_from_canvas

# What streamlit-drawable-canvas 0.13 (fabric.js 7) sent for three mouse strokes in Chromium:
# a "7"-like stroke from (50, 60) to (100, 220), a bar from (80, 130) to (160, 130), a dot at (200, 200).
DRAWING = json.loads((Path(__file__).parent / "fixtures" / "canvas_drawing.json").read_text())


def _path(points: list[tuple[float, float]], width: int = 20, **extra: object) -> dict:
    cmds = [["M", *points[0]]] + [["L", *p] for p in points[1:]]
    return {"type": "path", "path": cmds, "strokeWidth": width, "scaleX": 1, "scaleY": 1, "angle": 0, **extra}


def _rgba(gray: np.ndarray) -> np.ndarray:
    return np.dstack([gray, gray, gray, np.full_like(gray, 255)])


def test_reads_the_canvas_json_a_browser_sent() -> None:
    strokes = strokes_from_canvas(DRAWING)
    assert strokes is not None and len(strokes) == 3
    first, bar, dot = strokes
    assert np.allclose(first[0], (50, 60), atol=1) and np.allclose(first[-1], (100, 220), atol=1)
    assert len(first) > 6  # the quadratic segments are sampled, not only their end points
    assert np.allclose(bar[[0, -1]], [(80, 130), (160, 130)], atol=1)
    assert np.ptp(dot, axis=0).max() < 2


def test_empty_canvas_has_no_strokes_and_nothing_to_read() -> None:
    empty = {"version": "7.4.0", "objects": []}
    assert strokes_from_canvas(empty) == []
    assert canvas_gray(empty, None, (280, 280)) is None  # first render: JSON, no image yet
    black = _rgba(np.zeros((280, 280), np.uint8))
    assert not canvas_gray(empty, black, (280, 280)).any()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["objects"][0].update(scaleX=2),  # resized with the transform tool
        lambda d: d["objects"][0].update(angle=30),
        lambda d: d["objects"].append({"type": "rect", "left": 10, "top": 10}),
        lambda d: d["objects"][0]["path"].append(["A", 1, 2, 3]),  # a command it does not draw
        lambda d: d["objects"][0]["path"].append(["L", "x", 3]),
        lambda d: d["objects"][0].update(path="M 0 0"),
        lambda d: d.update(objects="nope"),
    ],
)
def test_anything_but_plain_freehand_paths_falls_back_to_the_pixels(change: object) -> None:
    drawing = copy.deepcopy(DRAWING)
    change(drawing)
    assert strokes_from_canvas(drawing) is None
    pixels = np.zeros((280, 280), np.uint8)
    pixels[60:220, 120:140] = 255
    assert np.array_equal(canvas_gray(drawing, _rgba(pixels), (280, 280)), canvas_to_gray(_rgba(pixels)))


@pytest.mark.parametrize("bad", [None, [], "objects", {"objects": None}])
def test_not_a_drawing_is_not_read(bad: object) -> None:
    assert strokes_from_canvas(bad) is None


@pytest.mark.parametrize("scale", [0.4, 1.0])
@pytest.mark.parametrize("pen", [8, 40])
def test_any_pen_on_any_size_of_digit_gives_mnist_stroke_width(scale: float, pen: int) -> None:
    """A 4 drawn small with a fat pen or large with a thin one: the redrawn stroke is MNIST's
    relative width (median 0.12 of the digit's height, 5-95% range 0.08-0.185)."""
    four = [[(170, 40), (70, 170), (200, 170)], [(160, 90), (150, 250)]]
    drawing = {"objects": [_path([(x * scale, y * scale) for x, y in s], width=pen) for s in four]}
    gray = canvas_gray(drawing, _rgba(np.zeros((280, 280), np.uint8)), (280, 280))
    ys = np.flatnonzero((gray >= 128).any(axis=1))
    relative = stroke_width(gray >= 128) / (ys[-1] - ys[0] + 1)
    assert 0.08 <= relative <= 0.16
    # Its tallest stroke (the stem, 160 px before scaling) sets the pen.
    assert pen_width(strokes_from_canvas(drawing)) == pytest.approx(STROKE_TARGET * 160 * scale, rel=0.01)


def test_a_number_on_two_lines_gets_the_pen_of_one_digit() -> None:
    """The tallest stroke sets the scale, not the whole drawing's height."""
    one_line = [np.array([(50.0, 20), (50, 120)]), np.array([(100.0, 20), (100, 120)])]
    two_lines = one_line + [np.array([(50.0, 150), (50, 250)])]
    assert pen_width(one_line) == pytest.approx(STROKE_TARGET * 100)
    assert pen_width(two_lines) < 0.6 * STROKE_TARGET * 230  # not the pen of a 230 px digit
    dots = [np.array([(10.0 * i, 100.0)]) for i in range(5)]
    assert pen_width(dots) >= 2.0  # a drawing with no height still has a visible pen


def test_redrawn_strokes_go_through_the_pipeline_like_any_drawing() -> None:
    seven = [np.array([(60.0, 50), (220, 50), (120, 240)])]
    st = preprocess_single(render_strokes(seven, (280, 280)))
    assert st is not None
    assert st.final.shape == (28, 28) and 0.99 <= st.final.max() <= 1.0
    assert not render_strokes([], (280, 280)).any()


def test_points_far_off_the_canvas_do_not_break_the_drawing() -> None:
    drawing = {"objects": [_path([(60, 40), (60, 240)]), _path([(1e15, -1e15), (2e15, 5)])]}
    gray = canvas_gray(drawing, None, (280, 280))
    assert gray.shape == (280, 280) and gray[40:240, 55:65].any()
