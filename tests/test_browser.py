"""End to end in a real browser: a real `streamlit run` server driven by headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_support import chromium, draw, metric, reset, streamlit_server, wait_for_strokes
from tests.handwriting import cursive_number, handwriting_dir, pendigits, strokes_on_canvas

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("appdata")
    with streamlit_server({"DIGIT_APP_DATA_DIR": str(data_dir)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: object, server: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.goto(server)
    p.locator("canvas.upper-canvas").wait_for(timeout=30_000)
    yield p
    context.close()


def _two_per_class() -> list[dict]:
    picked: dict[int, list[dict]] = {d: [] for d in range(10)}
    for s in pendigits():
        if len(picked[s["label"]]) < 2:
            picked[s["label"]].append(s)
    return [s for d in range(10) for s in picked[d]]


def test_draw_twenty_pendigits(page: object) -> None:
    handwriting_dir()
    right = 0
    seen = []
    for sample in _two_per_class():
        strokes = strokes_on_canvas(sample)
        draw(page, strokes)
        wait_for_strokes(page, len(strokes))
        shown = metric(page)
        seen.append((sample["label"], shown))
        right += shown == str(sample["label"])
        reset(page)
    assert right >= 19, seen


def test_draw_three_digit_number(page: object) -> None:
    handwriting_dir()
    by_label = {}
    for s in pendigits():
        by_label.setdefault(s["label"], s)
    strokes = []
    for i, digit in enumerate((3, 8, 5)):
        for stroke in strokes_on_canvas(by_label[digit], size=90, margin=8):
            strokes.append([(x + i * 93, y + 95) for x, y in stroke])
    draw(page, strokes)
    wait_for_strokes(page, len(strokes))
    assert metric(page) == "385"
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0  # client.toolbarMode


def test_draw_a_joined_cursive_number(page: object) -> None:
    """1000 written without lifting the pen, the digits overlapping: chained zeros are what
    segmentation cuts wrong; the string reader reads the row whole."""
    handwriting_dir()
    strokes = cursive_number("1000", writer=1, gap=-6.0)
    assert len(strokes) < 4  # the ligatures joined the digits' strokes
    draw(page, strokes)
    wait_for_strokes(page, len(strokes))
    assert metric(page) == "1000"


def _go_upload(page: object) -> None:
    page.get_by_role("link", name="Upload").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached", timeout=20_000)


def test_upload_scan_and_non_image(page: object, tmp_path: Path) -> None:
    scans = handwriting_dir() / "scans"
    scan = sorted((scans / sorted(p.name for p in scans.iterdir())[0] / "4").glob("*.png"))[0]
    _go_upload(page)
    page.get_by_text("Each image is one digit").click()
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is not an image at all")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(scan), str(junk)])
    page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=30_000)
    page.locator('[data-testid="stAlertContainer"]', has_text="notes.png").first.wait_for(timeout=30_000)
    assert metric(page) == "4"
    errors = page.locator('[data-testid="stAlert"], [data-testid="stAlertContainer"]').all_inner_texts()
    assert any("notes.png" in e for e in errors), errors
    assert "Traceback" not in page.content()
