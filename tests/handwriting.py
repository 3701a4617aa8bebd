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
