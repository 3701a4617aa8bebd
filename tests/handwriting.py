"""Access to the shared real-handwriting samples (tests and benchmarks only; never committed)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from tests.browser_support import in_ci

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "handwriting"


def handwriting_dir() -> Path:
    value = os.environ.get("HANDWRITING_DIR", "").strip()
    folder = Path(value) if value else DEFAULT_DIR
    if not (folder / "README.md").is_file():
        message = f"real handwriting samples not found in {folder}; set HANDWRITING_DIR"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return folder


@lru_cache(maxsize=1)
def pendigits() -> list[dict]:
    data = json.loads((handwriting_dir() / "pendigits" / "pendigits-train.json").read_text())
    return data["samples"]


def strokes_on_canvas(sample: dict, size: int = 280, margin: int = 40) -> list[list[tuple[float, float]]]:
    """Pen strokes (500x500 box, y up) scaled to fit a size x size canvas (y down) with a margin."""
    pts = [p for stroke in sample["strokes"] for p in stroke]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    w = max(max(xs) - min(xs), 1)
    h = max(max(ys) - min(ys), 1)
    scale = (size - 2 * margin) / max(w, h)
    ox = (size - w * scale) / 2
    oy = (size - h * scale) / 2
    return [
        [(ox + (x - min(xs)) * scale, oy + (max(ys) - y) * scale) for x, y in stroke]
        for stroke in sample["strokes"]
    ]


def cursive_number(
    digits: str, writer: int, height: float = 80.0, gap: float = 0.0, canvas: int = 280
) -> list[list[tuple[float, float]]]:
    """A number written in one hand without lifting the pen between digits: one pendigits train
    writer's drawings of `digits`, each scaled to `height`, set `gap` px apart (negative:
    overlapping), each digit's last stroke joined to the next digit's first by a ligature.
    Canvas strokes (y down), centred on a `canvas`-px square canvas."""
    samples = {s["label"]: s for s in pendigits() if s["writer"] == writer and s["split"] == "train"}
    strokes: list[list[tuple[float, float]]] = []
    x = 0.0
    for c in digits:
        pts = [p for stroke in samples[int(c)]["strokes"] for p in stroke]
        lo_x, lo_y = min(p[0] for p in pts), min(p[1] for p in pts)
        hi_x, hi_y = max(p[0] for p in pts), max(p[1] for p in pts)
        scale = height / max(hi_y - lo_y, 1)
        drawn = [
            [(x + (px - lo_x) * scale, (hi_y - py) * scale) for px, py in stroke]
            for stroke in samples[int(c)]["strokes"]
        ]
        if strokes:  # the ligature: the pen stays down from the last digit's end
            strokes[-1] = strokes[-1] + drawn[0]
            drawn = drawn[1:]
        strokes += drawn
        x += (hi_x - lo_x) * scale + gap
    width = x - gap
    ox, oy = (canvas - width) / 2, (canvas - height) / 2
    return [[(px + ox, py + oy) for px, py in stroke] for stroke in strokes]


def misread_drawing(model_dir: Path, version: int, min_confidence: float = 0.9) -> tuple[dict, int]:
    """The first pendigits drawing this model version reads confidently wrong on the Draw page
    (strokes redrawn as the page does, one digit found), and the digit it reads.

    End-to-end tests correct it to its true label, as a user correcting a real error would.
    """
    import numpy as np

    from digit_app.predictor import Predictor
    from digit_app.recognize import recognize
    from digit_app.strokes import render_strokes

    predictor = Predictor.load(model_dir, version)
    for sample in pendigits():
        strokes = [np.array(s, np.float64) for s in strokes_on_canvas(sample)]
        result = recognize(render_strokes(strokes, (280, 280)), predictor, single=False, strokes=strokes)
        if len(result.detail) != 1:
            continue
        d = result.detail[0]
        if d.label != sample["label"] and d.confidence >= min_confidence:
            return sample, d.label
    raise AssertionError(f"version {version} of {model_dir} reads every pendigits drawing right")


def clear_drawing(model_dir: Path, version: int, digit: int, min_confidence: float = 0.99) -> dict:
    """The first pendigits drawing of `digit` this model version reads right on the Draw page
    (strokes redrawn as the page does, one digit found) at `min_confidence` or more.

    End-to-end tests store a wrong label for it, as a careless or hostile user would, or confirm it.
    """
    import numpy as np

    from digit_app.predictor import Predictor
    from digit_app.recognize import recognize
    from digit_app.strokes import render_strokes

    predictor = Predictor.load(model_dir, version)
    for sample in pendigits():
        if sample["label"] != digit:
            continue
        strokes = [np.array(s, np.float64) for s in strokes_on_canvas(sample)]
        result = recognize(render_strokes(strokes, (280, 280)), predictor, single=False, strokes=strokes)
        found = result.detail[0] if len(result.detail) == 1 else None
        if found is not None and found.label == digit and found.confidence >= min_confidence:
            return sample
    raise AssertionError(
        f"version {version} of {model_dir} reads no pendigits {digit} at {min_confidence:.0%}"
    )
