"""Fault: the Streamlit server is killed (SIGKILL) while it saves a correction.

A real server and a real browser: each round draws a real pen trajectory, saves a correction
and kills the server a few milliseconds to a second after the click, so some kills land
before, some during and some after the write. After every kill the database passes its
integrity check, holds every correction the page acknowledged plus at most the one in
flight, each row whole; and a new server on the same database serves and saves again.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from digit_app import db
from digit_app.config import PROJECT_ROOT
from digit_app.feedback import FeedbackStore
from tests.browser_support import chromium, draw, reset, streamlit_server, wait_for_strokes
from tests.handwriting import handwriting_dir, pendigits, strokes_on_canvas

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

# Seconds between the click on "Save feedback" and SIGKILL, one server per round; on an idle
# 2-core machine the row is written 0.1-0.2 s after the click, so most kills land around it.
KILL_DELAYS = [0.0, 0.05, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.4, 0.8]


def _save(page: object, sample: dict, label: str) -> None:
    """Draw the sample, wait for its prediction, type a correction and click Save (no wait)."""
    strokes = strokes_on_canvas(sample)
    draw(page, strokes)
    wait_for_strokes(page, len(strokes), timeout_ms=60_000)
    page.get_by_role("textbox", name="Correct digits").fill(label)
    page.get_by_role("button", name="Save feedback").click()


def _check(url_db: str, acknowledged: int) -> int:
    """Integrity ok, every acknowledged row there, at most one more; every row whole."""
    store = FeedbackStore(url_db)
    try:
        assert store.integrity_check() == "ok"
        rows = store.rows()
        assert acknowledged <= len(rows) <= acknowledged + 1, (acknowledged, len(rows))
        images = store.images([r.id for r in rows])
        for r in rows:
            assert r.label in range(10) and r.session_id
            assert images[r.id].shape == (28, 28)
        return len(rows)
    finally:
        db.dispose_all()


def test_killed_server_loses_no_acknowledged_correction(tmp_path: Path) -> None:
    handwriting_dir()
    pool = pendigits()
    data = tmp_path / "data"
    url_db = f"sqlite:///{data / 'feedback.sqlite3'}"
    env = {"DIGIT_APP_DATA_DIR": str(data)}
    acknowledged = 0
    outcomes = []
    with chromium() as browser:
        for i, delay in enumerate(KILL_DELAYS):
            sample = pool[11 * i]
            label = str((sample["label"] + 1) % 10)
            with streamlit_server(env, timeout=120) as url:
                page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
                page.goto(url)
                page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
                # One correction acknowledged on screen before the fault...
                _save(page, pool[11 * i + 5], label)
                page.get_by_text(f"Thanks: saved {label} as").first.wait_for(timeout=60_000)
                acknowledged += 1
                reset(page)
                # ...then one in flight when the server dies.
                _save(page, sample, label)
                page.wait_for_timeout(delay * 1000)
                url.process.send_signal(signal.SIGKILL)
                url.process.wait(timeout=30)
                page.context.close()
            rows = _check(url_db, acknowledged)
            outcomes.append({"kill_after_s": delay, "in_flight_row_stored": rows > acknowledged})
            acknowledged = rows  # a row that landed counts from now on: it must never vanish

    # A fresh server on the same database serves and saves again, exactly once.
    with streamlit_server(env, timeout=120) as url, chromium() as browser:
        page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
        page.goto(url)
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        _save(page, pool[3], "5")
        page.get_by_text("Thanks: saved 5 as").first.wait_for(timeout=60_000)
        assert "Traceback" not in page.content()
    assert _check(url_db, acknowledged + 1) == acknowledged + 1

    report = PROJECT_ROOT / "reports"
    report.mkdir(exist_ok=True)
    (report / "server_kill.json").write_text(
        json.dumps(
            {"kills": len(KILL_DELAYS), "rows": acknowledged + 1, "rows_lost": 0, "rounds": outcomes},
            indent=2,
        )
    )
