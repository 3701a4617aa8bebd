"""Load: 20 concurrent browser sessions drawing and correcting against one real server.

Every session draws real pen trajectories (pendigits) as mouse strokes, waits for the
prediction, saves a correction, and clears the canvas, several times. Afterwards every
saved correction is in the database exactly once, no session saw an error, and the p95
time from the end of a stroke to the prediction on screen is written to reports/load.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from digit_app import db
from digit_app.config import PROJECT_ROOT
from digit_app.feedback import FeedbackStore
from tests.browser_support import CHROMIUM_FLAGS, LATENCY_WATCH, PAGE_IDLE, chromium_path, streamlit_server
from tests.handwriting import handwriting_dir, pendigits, strokes_on_canvas

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1200)]

SESSIONS = int(os.environ.get("LOAD_SESSIONS", "20"))
ROUNDS = 3
# What the result column says (captions, alerts, the metric), for the error message of a missed prediction.
SHOWN_TEXT = """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"], [data-testid="stAlertContainer"],'
  + ' [data-testid="stMetricValue"]')].map(e => e.innerText.trim()).join(' | ')"""


async def _session(browser: object, url: str, samples: list[dict], stats: dict, delay: float) -> None:
    await asyncio.sleep(delay)  # users arrive over a few seconds, not all in the same millisecond
    context = await browser.new_context(viewport={"width": 1200, "height": 1000})
    context.set_default_timeout(120_000)  # 20 pages share 2 CPU cores with the server
    page = await context.new_page()
    try:
        await page.goto(url, timeout=300_000)
        canvas = page.locator("canvas.upper-canvas")
        await canvas.wait_for(timeout=180_000)
        # Draw once the page is ready, as a person does: a stroke drawn while the first run is still
        # rendering can be lost under this load.
        await page.wait_for_function(f"() => {PAGE_IDLE}", timeout=120_000)
        for round_no, sample in enumerate(samples):
            strokes = strokes_on_canvas(sample)
            box = await canvas.bounding_box()
            scroll = await page.evaluate("() => window.scrollY")
            for i, stroke in enumerate(strokes):
                if i == len(strokes) - 1:
                    await page.evaluate(LATENCY_WATCH, [len(strokes), 60000])
                await page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                await page.mouse.down()
                for x, y in stroke[1:]:
                    await page.mouse.move(box["x"] + x, box["y"] + y)
                await page.mouse.up()
            ms = await page.evaluate("() => window.__latency")
            if ms < 0:
                shown = await page.evaluate(SHOWN_TEXT)
                now = await canvas.bounding_box()
                stats["errors"].append(
                    f"round {round_no}: no prediction for {len(strokes)} strokes within 60 s; canvas at y={box['y']:.0f}"
                    f" (scrollY {scroll}) when drawn, y={now['y']:.0f} now; page shows {shown!r}"
                )
                shot = PROJECT_ROOT / "reports" / f"load-failure-{len(stats['errors'])}.png"
                shot.parent.mkdir(exist_ok=True)
                await page.screenshot(path=str(shot), full_page=True)
                continue
            stats["latency_ms"].append(ms)
            # A correction, whatever was read, with one digit per digit read (a drawing read as two
            # digits takes two: the page refuses a correction of another length).
            read = (await page.locator('[data-testid="stMetricValue"]').first.inner_text()).strip()
            truth = "".join(str((sample["label"] + 1 + k) % 10) for k in range(max(1, len(read))))
            box_input = page.get_by_role("textbox", name="Correct digits")
            await box_input.fill(truth)
            await page.get_by_role("button", name="Save feedback").click()
            thanks = page.get_by_text(f"Thanks: saved {truth} as").first  # this drawing's, not an earlier one
            await thanks.wait_for(timeout=120_000)
            stats["saved"] += 1
            stats["digits_saved"] += len(truth)  # one row per digit
            stats["acks"].append(await thanks.inner_text())
            # The toolbar is the canvas component's own: a click on it while the run that saved the
            # feedback is still rendering can be lost under this load (streamlit-drawable-canvas 0.13),
            # so click once that run has finished, as a person does once the page has settled.
            await page.wait_for_function(f"() => {PAGE_IDLE}", timeout=120_000)
            await _reset(page, stats)
        content = await page.content()
        if "Something went wrong" in content or "Traceback" in content:
            stats["errors"].append("error shown in the page")
    except Exception as exc:  # noqa: BLE001 - counted as a session error
        stats["errors"].append(f"{type(exc).__name__}: {str(exc)[:200]}")
        shot = PROJECT_ROOT / "reports" / f"load-failure-{len(stats['errors'])}.png"
        shot.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
    finally:
        await context.close()


async def _reset(page: object, stats: dict) -> None:
    """Clear the canvas with its toolbar and wait for the cleared page, as a person would see it.

    Even on a settled page, 20 sessions on two cores lost about one reset click in 60 in CI (the
    drawing stayed, nothing was sent). A person clicks again; so does this, up to three times, and
    load.json counts the repeated clicks.
    """
    cleared = (
        "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
        f".some(e => e.innerText.trim() === '–') && {PAGE_IDLE}"
    )
    for attempt in range(3):
        await page.get_by_role("button", name="Reset canvas & history").click()
        try:
            await page.wait_for_function(cleared, timeout=40_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: the click did not take
            if attempt == 2:
                raise
            stats["reset_clicks_repeated"] += 1


async def _run(url: str, plan: list[list[dict]]) -> dict:
    from playwright.async_api import async_playwright

    stats: dict = {
        "saved": 0,
        "latency_ms": [],
        "errors": [],
        "acks": [],
        "reset_clicks_repeated": 0,
        "digits_saved": 0,
    }
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            await asyncio.gather(
                *(_session(browser, url, samples, stats, 1.5 * i) for i, samples in enumerate(plan))
            )
        finally:
            await browser.close()
    return stats


def test_twenty_sessions_drawing_and_correcting(tmp_path: Path) -> None:
    handwriting_dir()
    pool = pendigits()
    plan = [[pool[(s * ROUNDS + r) * 7] for r in range(ROUNDS)] for s in range(SESSIONS)]
    data = tmp_path / "data"
    t0 = time.monotonic()
    with streamlit_server({"DIGIT_APP_DATA_DIR": str(data)}, timeout=120) as url:
        stats = asyncio.run(_run(url, plan))
    seconds = time.monotonic() - t0
    url_db = f"sqlite:///{data / 'feedback.sqlite3'}"
    store = FeedbackStore(url_db)
    rows = store.count()
    sessions = {r.session_id for r in store.rows()}
    integrity = store.integrity_check()
    db.dispose_all()
    lat = np.array(stats["latency_ms"] or [float("nan")])
    figures = {
        "sessions": SESSIONS,
        "rounds_per_session": ROUNDS,
        "corrections_saved_in_ui": stats["saved"],
        "digits_saved_in_ui": stats["digits_saved"],
        "rows_in_database": rows,
        "distinct_session_ids": len(sessions),
        "session_errors": stats["errors"],
        "reset_clicks_repeated": stats["reset_clicks_repeated"],
        "acknowledgements": stats["acks"],
        "stroke_end_to_prediction_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "max": round(float(lat.max()), 1),
            "n": int(len(stats["latency_ms"])),
        },
        "wall_seconds": round(seconds, 1),
        "integrity": integrity,
    }
    out = PROJECT_ROOT / "reports"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(figures, indent=2))
    assert not stats["errors"], stats["errors"]
    assert stats["saved"] == SESSIONS * ROUNDS
    assert rows == stats["digits_saved"]  # every correction stored exactly once, a row per digit
    assert len(sessions) == SESSIONS
    assert integrity == "ok"
