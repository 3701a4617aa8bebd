"""Two app replicas sharing one PostgreSQL database and one model store, in a real browser.

A correction saved in replica A shows in replica B's live confusion matrix, and the version
a retraining started from A publishes is served by B without a restart.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from digit_app import db
from tests.browser_support import chromium, draw, draw_and_read, metric, streamlit_server, wait_for_strokes
from tests.handwriting import handwriting_dir, misread_drawing, strokes_on_canvas
from tests.pg_support import postgres_server
from tests.store_support import SERVED_VERSION
from tests.test_browser_feedback import TINY

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def replicas(tmp_path: Path, mnist_dir: Path) -> Iterator[tuple[str, str, Path]]:
    store = tmp_path / "store"
    shutil.copytree(SERVED_VERSION, store / "mnist_cnn" / "1")
    with postgres_server() as url:
        shared = {
            "DIGIT_APP_DATABASE_URL": url,
            "DIGIT_APP_MODEL_STORE": str(store),
            "DIGIT_APP_RETRAIN_CONFIG": json.dumps(TINY),
            "MNIST_DIR": str(mnist_dir),
        }
        with (
            streamlit_server({**shared, "DIGIT_APP_DATA_DIR": str(tmp_path / "a")}) as a,
            streamlit_server({**shared, "DIGIT_APP_DATA_DIR": str(tmp_path / "b")}) as b,
        ):
            yield a, b, store
        db.dispose_all()


def _metric_value(page: object, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label).first
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def test_feedback_and_new_versions_are_shared(replicas: tuple[str, str, Path]) -> None:
    url_a, url_b, store = replicas
    handwriting_dir()
    sample, _ = misread_drawing(store / "mnist_cnn", 1)  # a real error of version 1, corrected
    truth = str(sample["label"])
    strokes = strokes_on_canvas(sample)
    with chromium() as browser:
        a = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        b = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        b.goto(url_b)
        b.get_by_role("link", name="Live confusion matrix").click()
        b.get_by_test_id("stMetric").filter(has_text="Samples").first.wait_for(timeout=120_000)
        assert _metric_value(b, "Samples") == "0"

        a.goto(url_a)
        a.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        draw(a, strokes)
        wait_for_strokes(a, len(strokes))
        a.get_by_role("textbox", name="Correct digits").fill(truth)
        a.get_by_role("button", name="Save feedback").click()
        a.get_by_text("1 correction(s)").wait_for(timeout=20_000)

        # B's matrix refreshes by itself: no reload, no click. A rerun redraws its metrics one
        # by one, so wait until both show the correction, then read them.
        b.wait_for_function(
            """() => {
                 const value = (label) => [...document.querySelectorAll('[data-testid="stMetric"]')]
                   .filter(m => m.innerText.includes(label))
                   .map(m => m.querySelector('[data-testid="stMetricValue"]').innerText.trim())[0];
                 return value('Samples') === '1' && value('Corrections') === '1';
               }""",
            timeout=30_000,
        )
        assert _metric_value(b, "Samples") == _metric_value(b, "Corrections") == "1"

        a.get_by_role("link", name="Retrain").click()
        a.get_by_role("button", name="Retrain", exact=True).click()
        outcome = a.get_by_text(re.compile(r"Job \d+ (published|rejected|failed|cancelled) at")).first
        outcome.wait_for(timeout=600_000)
        assert "published" in outcome.inner_text(), outcome.inner_text()
        assert (store / "mnist_cnn" / "2" / "saved_model.pb").is_file()

        b.get_by_role("link", name="Draw").click()
        b.locator("canvas.upper-canvas").wait_for(timeout=60_000)
        draw_and_read(b, strokes, timeout_ms=45_000)  # B loads version 2 on this run
        b.get_by_text("model version 2").first.wait_for(timeout=20_000)
        assert metric(b) == truth
