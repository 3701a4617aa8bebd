"""Canvas drawings read back as pen strokes and drawn again with an MNIST-like pen.

Why: the canvas paints with whatever pen width the user picked, and on a small digit a 20 px
pen is far bolder than any MNIST writer's. Thinning the pixels afterwards cannot reopen the
loops and sharp angles the bold pen filled in: on the pendigits drawings (tablet box scaled
into the canvas, 18 px pen), model version 3 read 95.5% right from the bold pixels thinned to
MNIST's width, and 97.3% from the same strokes drawn with a pen of MNIST's relative width. The canvas keeps every stroke as a path
(fabric.js JSON), so the Draw page redraws the strokes from it at STROKE_TARGET of the digit's
height and hands the picture to the usual pipeline. Anything that is not plain freehand
paths (moved, scaled or rotated objects, other shapes) is left to the canvas's pixels.

Pure numpy/OpenCV; no Streamlit import (the page passes `json_data` in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from digit_app.imageio import canvas_to_gray
from digit_app.reading.normalize import STROKE_TARGET

MIN_PEN = 2.0  # px: never thinner than this, so a tiny drawing still has solid strokes
_SUBPIXEL_BITS = 4  # OpenCV draws at 1/16 px, so the redrawn stroke follows the path smoothly
_CURVE_STEPS = 4  # points per quadratic or cubic segment; fabric's segments are a few px long
_CURVES = {"Q": 4, "C": 6}  # Bezier commands and their number of coordinates
_IDENTITY = {"scaleX": 1, "scaleY": 1, "angle": 0, "skewX": 0, "skewY": 0, "flipX": False, "flipY": False}

Stroke = np.ndarray  # (N, 2) float64 canvas coordinates (x right, y down)


def strokes_from_canvas(json_data: Mapping | None) -> list[Stroke] | None:
    """The freehand strokes of a streamlit-drawable-canvas drawing, in canvas pixels.

    [] for an empty canvas; None when the drawing holds anything else than untransformed
    freehand paths, so the caller falls back to the canvas's pixels.
    """
    if not isinstance(json_data, Mapping):
        return None
    objects = json_data.get("objects")
    if not isinstance(objects, list):
        return None
    strokes = []
    for obj in objects:
        if not isinstance(obj, Mapping) or str(obj.get("type", "")).lower() != "path":
            return None
        if any(obj.get(key, same) != same for key, same in _IDENTITY.items()):
            return None
        pts = _path_points(obj.get("path"))
        if pts is None:
            return None
        if len(pts):
            strokes.append(pts)
    return strokes


def _path_points(path: object) -> Stroke | None:
    """Points along an SVG-style path of M, L, Q and C commands with absolute coordinates."""
    if not isinstance(path, list):
        return None
    pts: list[np.ndarray] = []
    t = np.linspace(0.0, 1.0, _CURVE_STEPS + 1)[1:, None, None]
    try:
        for cmd in path:
            op, args = str(cmd[0]), np.array(cmd[1:], np.float64)
            if op in ("M", "L") and args.shape == (2,):
                pts.append(args[None])
            elif op in _CURVES and args.shape == (_CURVES[op],) and pts:
                # The segment's control points, from the last point; de Casteljau's construction.
                ctrl = np.concatenate([pts[-1][-1:], args.reshape(-1, 2)])[None]
                while ctrl.shape[1] > 1:
                    ctrl = (1 - t) * ctrl[:, :-1] + t * ctrl[:, 1:]
                pts.append(ctrl[:, 0])
            else:
                return None
    except (TypeError, ValueError, IndexError):
        return None
    arr = np.concatenate(pts) if pts else np.zeros((0, 2))
    return arr if np.isfinite(arr).all() else None


def pen_width(strokes: Sequence[Stroke]) -> float:
    """MNIST's pen width for these strokes: STROKE_TARGET of the height of one digit.

    A digit's height is taken as that of its tallest stroke (most digits have one stroke of
    their full height), and at least half the drawing's: a number written on two lines, or a
    digit built from short strokes, still gets a pen of one digit's scale.
    """
    if not strokes:
        return MIN_PEN
    every = np.concatenate(strokes)
    drawing = float(np.ptp(every[:, 1]))
    tallest = max(float(np.ptp(s[:, 1])) for s in strokes)
    return max(MIN_PEN, STROKE_TARGET * max(tallest, 0.5 * drawing))


def render_strokes(
    strokes: Sequence[Stroke], shape: tuple[int, int], width: float | None = None
) -> np.ndarray:
    """White strokes on black, uint8 (H, W), drawn with round caps like the canvas's pen."""
    canvas = np.zeros(shape[:2], np.uint8)
    if not strokes:
        return canvas
    limit = 2.0 * max(shape[:2])  # points far off the canvas stay off it, in int32 range
    strokes = [np.clip(np.asarray(s, np.float64), -limit, limit) for s in strokes]
    w = min(pen_width(strokes) if width is None else float(width), float(max(shape[:2])))
    thickness = max(1, int(round(w)))
    one = 1 << _SUBPIXEL_BITS
    for s in strokes:
        pts = np.round(s * one).astype(np.int32)
        if len(pts) == 1 or not np.any(pts != pts[0]):
            radius = max(1, int(round(w / 2 * one)))
            cv2.circle(canvas, (int(pts[0, 0]), int(pts[0, 1])), radius, 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
        else:
            cv2.polylines(canvas, [pts], False, 255, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    return canvas


def read_canvas(
    json_data: Mapping | None, rgba: np.ndarray | None, shape: tuple[int, int]
) -> tuple[np.ndarray | None, list[Stroke] | None]:
    """What the Draw page reads: the picture (the strokes redrawn with an MNIST-like pen when
    the canvas's paths can be read, else its pixels; None while nothing has been drawn or sent)
    and the strokes it was drawn from (None when the pixels are used)."""
    strokes = strokes_from_canvas(json_data)
    if strokes:
        return render_strokes(strokes, shape if rgba is None else rgba.shape[:2]), strokes
    return (None if rgba is None else canvas_to_gray(rgba)), None


def canvas_gray(
    json_data: Mapping | None, rgba: np.ndarray | None, shape: tuple[int, int]
) -> np.ndarray | None:
    """The picture `read_canvas` reads."""
    return read_canvas(json_data, rgba, shape)[0]
