"""One AppTest per page: each renders without exception and recognizes injected input."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from digit_app.config import PROJECT_ROOT

PAGES = PROJECT_ROOT / "digit_app" / "pages"


class FakeCanvasResult:
    def __init__(self, rgba: np.ndarray | None, json_data: dict | None = None) -> None:
        self.image_data = rgba
        self.json_data = json_data


def _drawn_digit(text: str) -> np.ndarray:
    """A 280x280 RGBA canvas with white strokes on black, as the canvas component returns it."""
    canvas = np.zeros((280, 280), np.uint8)
    cv2.putText(
        canvas,
        text,
        (60 if len(text) == 1 else 10, 220),
        cv2.FONT_HERSHEY_SIMPLEX,
        7 if len(text) == 1 else 3.5,
        255,
        22 if len(text) == 1 else 12,
        cv2.LINE_AA,
    )
    rgba = np.dstack([canvas, canvas, canvas, np.full_like(canvas, 255)])
    return rgba


@pytest.fixture
def fake_canvas(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replace the canvas component (a browser widget AppTest cannot run) with injected pixels."""
    state: dict = {"rgba": None, "json": None}
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = lambda **kwargs: FakeCanvasResult(state["rgba"], state["json"])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    return state


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)


def test_app_entry_renders_draw_page_by_default(fake_canvas: dict) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Draw digits"


def test_draw_page_empty_canvas_asks_for_a_drawing(fake_canvas: dict) -> None:
    at = _page("draw").run()
    assert not at.exception
    assert at.metric[0].label == "Prediction"
    assert at.metric[0].value == "–"


def test_draw_page_blank_canvas_is_no_digit(fake_canvas: dict) -> None:
    fake_canvas["rgba"] = _drawn_digit("")
    at = _page("draw").run()
    assert not at.exception
    assert at.metric[0].value == "–"
    assert at.info


def test_draw_page_predicts_injected_drawing(fake_canvas: dict) -> None:
    fake_canvas["rgba"] = _drawn_digit("3")
    at = _page("draw").run()
    assert not at.exception
    assert at.metric[0].label == "Prediction"
    assert at.metric[0].value == "3"


def test_draw_page_reads_a_number(fake_canvas: dict) -> None:
    fake_canvas["rgba"] = _drawn_digit("407")
    at = _page("draw").run()
    assert not at.exception
    assert at.metric[0].value == "407"


def test_draw_page_reads_the_strokes_not_the_pen(fake_canvas: dict) -> None:
    """The canvas's paths are redrawn with an MNIST-like pen: a small 7 drawn with the widest
    pen, whose bold pixels fill its corner, is read from its strokes, even on the first render
    (JSON and no image yet)."""
    seven = [["M", 110, 110], ["L", 170, 110], ["L", 135, 190]]
    fake_canvas["json"] = {"objects": [{"type": "path", "path": seven, "strokeWidth": 40}]}
    at = _page("draw").run()
    assert not at.exception
    assert at.metric[0].value == "7"
    assert any("1 stroke" in c.value for c in at.caption)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_page_renders_without_files() -> None:
    at = _page("upload").run()
    assert not at.exception
    assert at.info


def _paper_digit(text: str) -> np.ndarray:
    paper = np.full((120, 120 * len(text)), 235, np.uint8)
    cv2.putText(paper, text, (12, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.5, 20, 9, cv2.LINE_AA)
    return paper


def test_upload_page_reads_images_and_reports_bad_files(tmp_path: Path) -> None:
    at = _page("upload").run()
    uploader = at.get_by_key("uploads") if hasattr(at, "get_by_key") else at.file_uploader[0]
    uploader.upload("seven.png", _png(_paper_digit("7")), "image/png")
    uploader.upload("notes.txt", b"not an image", "text/plain")
    at.run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["7"]
    assert any("notes.txt" in e.value for e in at.error)
    assert at.download_button
