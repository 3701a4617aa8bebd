"""End to end: draw, correct the label, retrain from the UI, and see the corrected label served; store
a wrong label, see it flagged, reject it, and see a retraining leave it out."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from digit_app import model_store
from digit_app.feedback import FeedbackStore
from tests.browser_support import (
    chromium,
    correct_drawing,
    dataframe_cell,
    draw,
    draw_and_read,
    metric,
    streamlit_server,
    wait_for_strokes,
    wait_until_idle,
)
from tests.handwriting import clear_drawing, handwriting_dir, misread_drawing, strokes_on_canvas
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


ADMIN_PASSWORD = "review-s3cret"


@contextlib.contextmanager
def served_app(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, password: str | None = None
) -> Iterator[str]:
    """The app on a copy of the served version, its own database, and TINY retrainings."""
    store = tmp_path / "store"
    shutil.copytree(SERVED_VERSION, store / "mnist_cnn" / "1")
    env = {
        "DIGIT_APP_DATA_DIR": str(tmp_path / "data"),
        "DIGIT_APP_MODEL_STORE": str(store),
        "DIGIT_APP_RETRAIN_CONFIG": json.dumps(TINY),
        "MNIST_DIR": str(mnist_dir),
    }
    if password:
        env["DIGIT_APP_ADMIN_PASSWORD"] = password
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DIGIT_APP_DATABASE_URL", raising=False)
    if not password:
        monkeypatch.delenv("DIGIT_APP_ADMIN_PASSWORD", raising=False)
    with streamlit_server(env) as url:
        yield url


@pytest.fixture
def app(tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with served_app(tmp_path, mnist_dir, monkeypatch) as url:
        yield url


@pytest.fixture
def guarded_app(tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The same app with admin actions behind ADMIN_PASSWORD."""
    with served_app(tmp_path, mnist_dir, monkeypatch, ADMIN_PASSWORD) as url:
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


def enter_password(page: object) -> None:
    box = page.get_by_label("Admin password")
    box.fill(ADMIN_PASSWORD)
    box.press("Enter")
    wait_until_idle(page)


def retrain(page: object, job: int) -> str:
    """Start a retraining from the Retrain page and wait for job `job`'s outcome; its text."""
    page.get_by_role("button", name="Retrain", exact=True).click()
    outcome = page.get_by_text(re.compile(rf"Job {job} (published|rejected|failed|cancelled) at")).first
    outcome.wait_for(timeout=600_000)
    return outcome.inner_text()


def test_reject_a_wrong_correction_and_retrain_without_it(guarded_app: str, tmp_path: Path) -> None:
    """A user stores a clear 0 as a 1. Saving scores it with the model alone (unchecked, so not
    flagged); the first retraining checks it against the nearest training digits, holds it out
    and, with nothing else stored, says there is nothing left to learn from. The Retrain page
    then lists it as suspect with its reason; an admin rejects it with the password. After an
    honest confirmation of a clear 3, the next retraining learns from the 3 alone, and the job
    outcome, the new version's card and the versions table say the rejected row was left out."""
    handwriting_dir()
    models = tmp_path / "store" / "mnist_cnn"
    zero = strokes_on_canvas(clear_drawing(models, 1, 0))
    three = strokes_on_canvas(clear_drawing(models, 1, 3))
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(guarded_app)
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        correct_drawing(page, zero, read_as="0", truth="1")
        [row] = FeedbackStore().rows()
        assert (row.predicted, row.label, row.suspicion_checked) == (0, 1, False)

        page.get_by_role("link", name="Retrain").click()
        page.get_by_text("not yet checked against real handwriting").wait_for(timeout=30_000)
        assert page.get_by_text("0 suspect correction(s) first").is_visible()
        enter_password(page)
        outcome = retrain(page, 1)
        assert "Job 1 failed" in outcome, outcome
        assert "1 of the 1 stored labels look wrong" in outcome, outcome

        page.reload()  # the list is drawn once per run; the job panel alone refreshes itself
        flagged = page.get_by_text(f"suspect · #{row.id} · read as 0, labelled 1 · canvas").first
        flagged.wait_for(timeout=60_000)
        assert page.get_by_text("1 suspect correction(s) first").is_visible()
        reason = page.get_by_text(re.compile(r"^suspicion \d\.\d\d: ")).first.inner_text()
        assert re.fullmatch(
            r"suspicion (0\.9[7-9]|1\.00): the model reads 0 at \d+% \(1: \d+%\), and .*nearest training digits.*",
            reason,
        ), reason
        enter_password(page)
        page.get_by_role("button", name="Reject").click()
        page.get_by_text(f"rejected · #{row.id} · read as 0, labelled 1").first.wait_for(timeout=30_000)
        assert page.get_by_text("0 suspect correction(s) first").is_visible()
        assert [r.review for r in FeedbackStore().rows()] == ["rejected"]

        page.get_by_role("link", name="Draw").click()
        page.locator("canvas.upper-canvas").wait_for(timeout=30_000)
        draw_and_read(page, three, timeout_ms=45_000)
        assert metric(page) == "3"
        page.get_by_role("button", name="Save feedback").click()  # unchanged: a confirmation
        page.get_by_text("saved 3 as confirmation").wait_for(timeout=30_000)

        page.get_by_role("link", name="Retrain").click()
        page.get_by_text(f"rejected · #{row.id}").first.wait_for(timeout=30_000)
        enter_password(page)
        outcome = retrain(page, 2)
        assert "Job 2 published" in outcome, outcome
        page.get_by_text(
            "Learned from 1 of 2 stored samples: 0 held out as suspect, 0 accepted and 1 rejected by an admin."
        ).wait_for(timeout=30_000)
        counts = model_store.read_card(models, 2)["data"]["counts"]
        assert (counts["feedback"], counts["held_out_suspect"], counts["rejected"]) == (1, 0, 1)

        page.reload()  # the versions table, like the list, is drawn once per run
        origin = page.locator('th[role="columnheader"]', has_text="origin")  # hidden: inside a canvas
        page.locator('[data-testid="stDataFrame"]').filter(has=origin).wait_for(timeout=60_000)
        versions = page.locator('[data-testid="stDataFrame"]').last  # the page's last table
        columns = ("version", "origin", "feedback samples", "held out as suspect", "rejected by an admin")
        newest = {c: dataframe_cell(versions, c) for c in columns}
        assert newest == {
            "version": "2",
            "origin": "retrained from 1",
            "feedback samples": "1",
            "held out as suspect": "0",
            "rejected by an admin": "1",
        }, newest
        assert "Traceback" not in page.content()
