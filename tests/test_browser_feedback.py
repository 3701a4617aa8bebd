"""End to end: draw, correct the label, retrain from the UI, and see the corrected label served."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from digit_app.feedback import FeedbackStore
from tests.browser_support import chromium, draw, draw_and_read, metric, streamlit_server, wait_for_strokes
from tests.handwriting import handwriting_dir, misread_drawing, strokes_on_canvas
from tests.store_support import SERVED_VERSION

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

# A tiny retraining so the test takes seconds; the gate's MNIST rules are relaxed because a
# 1,000-image evaluation is too noisy for a 0.1-point rule, but the feedback must be learned.
TINY = {
    "epochs": 2,
    "replay": 600,
    "feedback_share": 0.3,
    "test_limit": 1000,
    "max_mnist_drop": 1.0,
    "max_class_drop": 1.0,
}


@pytest.fixture
def app(tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    store = tmp_path / "store"
    shutil.copytree(SERVED_VERSION, store / "mnist_cnn" / "1")
    env = {
        "DIGIT_APP_DATA_DIR": str(tmp_path / "data"),
        "DIGIT_APP_MODEL_STORE": str(store),
        "DIGIT_APP_RETRAIN_CONFIG": json.dumps(TINY),
        "MNIST_DIR": str(mnist_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DIGIT_APP_DATABASE_URL", raising=False)
    monkeypatch.delenv("DIGIT_APP_ADMIN_PASSWORD", raising=False)
    with streamlit_server(env) as url:
        yield url


def test_correct_retrain_and_see_the_corrected_label(app: str, tmp_path: Path) -> None:
    handwriting_dir()
    # A real error of the served version 1, corrected to what was written.
    sample, misread = misread_drawing(tmp_path / "store" / "mnist_cnn", 1)
    truth = str(sample["label"])
    strokes = strokes_on_canvas(sample)
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(app)
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        draw(page, strokes)
        wait_for_strokes(page, len(strokes))
        assert metric(page) == str(misread)

        page.get_by_role("textbox", name="Correct digits").fill(truth)
        page.get_by_role("button", name="Save feedback").click()
        page.get_by_text("1 correction(s)").wait_for(timeout=20_000)
        rows = FeedbackStore().rows()
        assert [(r.label, r.predicted, r.source) for r in rows] == [(int(truth), misread, "canvas")]

        page.get_by_role("link", name="Retrain").click()
        page.get_by_role("button", name="Retrain", exact=True).click()
        outcome = page.get_by_text(re.compile(r"Job \d+ (published|rejected|failed|cancelled) at")).first
        outcome.wait_for(timeout=600_000)
        assert "published" in outcome.inner_text(), outcome.inner_text()
        assert (tmp_path / "store" / "mnist_cnn" / "2" / "saved_model.pb").is_file()

        page.get_by_role("link", name="Draw").click()
        page.locator("canvas.upper-canvas").wait_for(timeout=30_000)
        # This run loads version 2 first (a SavedModel load and warm-up, slow on a busy machine).
        # CI lost this drawing once in the run that mounts the canvas: drawn again, it is read.
        draw_and_read(page, strokes, timeout_ms=45_000)
        assert metric(page) == truth
        assert "Traceback" not in page.content()
