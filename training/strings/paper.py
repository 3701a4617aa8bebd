"""Ink on paper: a drawn row of digits made to look scanned or photographed, or drawn on the
app's canvas.

In: the row's ink, float32 (H, W) in 0..1, white on black. Out: a grayscale uint8 picture as
the app receives it: dark ink on paper (or, now and then, light on dark), or the Draw page's
white strokes on black.

Why: the string model reads the ink that the reading path (`to_ink`) finds, so it must learn
from pictures whose paper, light and blur make `to_ink` keep, break or blur strokes the way
real scans and photos do: textured or patterned paper (cheques print guilloches), uneven
light, ink that fades along a stroke, blur, sensor noise and JPEG's blocks.
"""

from __future__ import annotations

import cv2
import numpy as np


def _smooth_field(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Random values varying smoothly over the picture, about `cells` bumps along its longer side, -1..1."""
    h, w = shape
    gh, gw = max(2, round(cells * h / max(h, w)) + 1), max(2, round(cells * w / max(h, w)) + 1)
    grid = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _pattern(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A printed security pattern: fine wavy lines, as on cheques, 0..1."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(3.0, 9.0)
    angle = rng.uniform(0, np.pi)
    wave = rng.uniform(0.0, 6.0) * np.sin(xx / rng.uniform(8, 30) + rng.uniform(0, 6))
    phase = (xx * np.cos(angle) + yy * np.sin(angle) + wave) * (2 * np.pi / period)
    return (0.5 + 0.5 * np.cos(phase)) ** 4


def on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ink written on a sheet, lit and captured: grayscale uint8, usually dark on light."""
    h, w = ink.shape
    paper = np.full((h, w), rng.uniform(150, 250), np.float32)
    paper += rng.uniform(0, 12) * _smooth_field((h, w), int(rng.integers(3, 12)), rng)  # texture
    if rng.random() < 0.3:
        paper -= rng.uniform(5, 30) * _pattern((h, w), rng)
    if rng.random() < 0.5:  # uneven light: a gradient or a shadow across the sheet
        paper *= 1.0 - rng.uniform(0.05, 0.4) * (0.5 + 0.5 * _smooth_field((h, w), 2, rng))
    dark = rng.uniform(0, 90)
    strength = np.clip(1.0 - rng.uniform(0, 0.5) * (0.5 + 0.5 * _smooth_field((h, w), 6, rng)), 0.3, 1.0)
    a = np.clip(ink * strength, 0.0, 1.0)
    gray = paper * (1 - a) + np.minimum(dark, paper - 30) * a
    if rng.random() < 0.6:
        gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.3, 1.2))
    gray += rng.normal(0.0, rng.uniform(0.5, 7.0), gray.shape).astype(np.float32)
    if rng.random() < 0.06:
        gray = 255.0 - gray  # light ink on a dark sheet (a photo of a board, an inverted scan)
    out = np.clip(gray, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 96))])
        if ok:
            out = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    return out


def on_canvas(ink: np.ndarray) -> np.ndarray:
    """The ink as the Draw page hands it over: white strokes on exactly black, uint8."""
    return np.clip(np.round(ink * 255), 0, 255).astype(np.uint8)
