"""A real `streamlit run` server and headless Debian Chromium (Playwright) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from digit_app.config import PROJECT_ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def chromium_path() -> str:
    """The system Chromium; missing means fail under CI, skip on a developer machine."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        message = "Chromium not found (apt-get install -y chromium, or set CHROMIUM_PATH)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerURL(str):
    """The server's URL, carrying its process so a fault test can kill it."""

    process: subprocess.Popen


@contextlib.contextmanager
def streamlit_server(env_extra: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[ServerURL]:
    """Start `streamlit run app.py` on a free loopback port; yields its URL and stops it after."""
    port = free_port()
    env = {**os.environ, **(env_extra or {}), "PYTHONUNBUFFERED": "1"}
    log = Path(env.get("DIGIT_APP_DATA_DIR", "/tmp")) / f"streamlit-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(PROJECT_ROOT / "app.py"),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.process = proc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        if proc.poll() is None:  # a fault test may have killed it already
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A Playwright Chromium browser (the Debian binary; Playwright cannot download one here)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# A JavaScript expression, true once the page has finished its script run: nothing stale, not Running.
PAGE_IDLE = (
    "!document.querySelector('[data-stale=\"true\"]')"
    " && !document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText.includes('Running')"
)


def metric(page: object) -> str:
    return page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()


def wait_for_strokes(page: object, n: int, timeout_ms: int = 20_000) -> None:
    """Wait until the script run that saw all n strokes has rendered its result."""
    page.get_by_text(re.compile(rf"\b{n} strokes?\b")).first.wait_for(timeout=timeout_ms)
    wait_until_idle(page, timeout_ms)


def wait_until_idle(page: object, timeout_ms: int = 60_000) -> None:
    """Wait until the page has finished its run (no stale element, nothing Running).

    A stroke ended while the run that mounts the canvas is finishing can be dropped by
    Streamlit's frontend (streamlit/streamlit#16732: a component value destroyed before its
    flush); a person draws on the page once it is ready, and so do the tests.
    """
    page.wait_for_function(f"() => {PAGE_IDLE}", timeout=timeout_ms)


def draw(page: object, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw the strokes with the mouse once the page is idle (see `wait_until_idle`)."""
    wait_until_idle(page)
    box = page.locator("canvas.upper-canvas").bounding_box()
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=2)
        if len(stroke) == 1:
            page.mouse.move(box["x"] + x0 + 1, box["y"] + y0 + 1)
        page.mouse.up()


def draw_and_read(
    page: object, strokes: list[list[tuple[float, float]]], timeout_ms: int, tries: int = 3
) -> None:
    """Draw the strokes and wait for the run that read them.

    A drawing whose stroke Streamlit's frontend dropped (see `wait_until_idle`) is never read:
    the page still shows the run before it. A person then clears the canvas and draws again,
    and so does this, at most `tries` times. A server that does not answer still fails.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries - 1):
        draw(page, strokes)
        try:
            wait_for_strokes(page, len(strokes), timeout_ms)
            return
        except PlaywrightTimeout:
            reset(page)
    draw(page, strokes)
    wait_for_strokes(page, len(strokes), timeout_ms)


def reset(page: object) -> None:
    page.get_by_role("button", name="Reset canvas & history").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')].some(e => e.innerText.trim() === '–')"
        f" && {PAGE_IDLE}",
        timeout=20_000,
    )


# Installed before the last stroke of a drawing; the promise is kept in window.__latency (evaluate()
# would wait for a returned promise) and resolves to ms from `mouseup` to the finished script run
# showing the result for all n strokes, or -1 after `give_up_ms`. The page is checked on every DOM
# change (and every 10 ms), not once per animation frame, which headless Chromium may throttle.
LATENCY_WATCH = """
([n, giveUpMs]) => { window.__latency = new Promise((resolve) => {
  let up = null;
  document.addEventListener('mouseup', () => { up = performance.now(); }, {capture: true, once: true});
  const re = new RegExp('\\\\b' + n + ' strokes?\\\\b');
  const done = () => {
    const shown = [...document.querySelectorAll('[data-testid="stCaptionContainer"], [data-testid="stAlertContainer"]')]
      .some(e => re.test(e.innerText));
    const stale = document.querySelector('[data-stale="true"]');
    const running = document.querySelector('[data-testid="stStatusWidget"]')?.innerText.includes('Running');
    return up !== null && shown && !stale && !running;
  };
  let finished = false;
  const check = () => {
    if (!finished && done()) { finished = true; resolve(performance.now() - up); obs.disconnect(); clearInterval(timer); }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  const timer = setInterval(check, 10);
  setTimeout(() => resolve(-1), giveUpMs);
}); }
"""


def wait_for_metrics(page: object, expected: dict[str, str], timeout_ms: int = 60_000) -> None:
    """Wait until the page's metrics with these labels all show these values.

    A rerun redraws its metrics one by one, so they are read together, in the page.
    """
    page.wait_for_function(
        """(expected) => Object.entries(expected).every(([label, want]) =>
             [...document.querySelectorAll('[data-testid="stMetric"]')]
               .filter(m => m.innerText.includes(label))
               .some(m => m.querySelector('[data-testid="stMetricValue"]')?.innerText.trim() === want))""",
        arg=expected,
        timeout=timeout_ms,
    )


def correct_drawing(
    page: object, strokes: list[list[tuple[float, float]]], read_as: str, truth: str, timeout_ms: int = 60_000
) -> None:
    """Draw on the Draw page, see it read as `read_as`, and save `truth` as the correction."""
    draw(page, strokes)
    wait_for_strokes(page, len(strokes), timeout_ms)
    assert metric(page) == read_as
    page.get_by_role("textbox", name="Correct digits").fill(truth)
    page.get_by_role("button", name="Save feedback").click()
    page.get_by_text("1 correction(s)").wait_for(timeout=30_000)


def dataframe_cell(frame: object, column: str, row: int = 0) -> str:
    """The text an st.dataframe (`frame`, its stDataFrame locator) shows in one cell.

    Read from the grid's accessible table, which holds only the columns in view: when the column
    is not among them, the grid is scrolled to its left end, then to its right end.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    frame.scroll_into_view_if_needed()
    # That table is inside the grid's canvas, so never "visible": located by CSS, waited for attached.
    header = frame.locator('th[role="columnheader"]', has_text=re.compile(f"^{re.escape(column)}$"))
    for left in ("0", "e.scrollWidth"):
        if header.count():
            break
        frame.locator(".dvn-scroller").evaluate(f"e => {{ e.scrollLeft = {left}; }}")
        with contextlib.suppress(PlaywrightTimeout):  # not there either: try the other end
            header.wait_for(state="attached", timeout=3_000)
    header.wait_for(state="attached", timeout=10_000)
    index = header.get_attribute("aria-colindex")
    return frame.locator(
        f'tr[aria-rowindex="{row + 2}"] [role="gridcell"][aria-colindex="{index}"]'
    ).inner_text()
