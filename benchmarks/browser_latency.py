"""Latency as the user feels it: pen-up on the canvas to the finished script run showing the prediction.

    python -m benchmarks.browser_latency [--drawings 40] [--numbers 20]

A real `streamlit run` server and headless Debian Chromium. For each pendigits drawing the
page records (in the browser's own clock) the `mouseup` of the last stroke and the moment the
result for all strokes is on screen with no element left stale from the previous run. The
4-digit numbers are written joined (`tests.handwriting.cursive_number`, train writers'
strokes), read by both readers; all strokes but the last are drawn first, and the last one's
pen-up is timed.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from benchmarks.report import write_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.browser_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--drawings", type=int, default=40, help="Pendigits drawings to time.")
    parser.add_argument("--numbers", type=int, default=20, help="Joined 4-digit numbers to time.")
    args = parser.parse_args(argv)

    from tests.browser_support import LATENCY_WATCH, chromium, streamlit_server, wait_for_strokes
    from tests.handwriting import cursive_number, pendigits, strokes_on_canvas

    samples = [s for s in pendigits() if len(s["strokes"]) == 1][: args.drawings]
    rng = np.random.default_rng(0)
    writers = sorted({s["writer"] for s in pendigits() if s["split"] == "train"})
    numbers = [
        cursive_number("".join(map(str, rng.integers(0, 10, 4))), int(rng.choice(writers)))
        for _ in range(args.numbers)
    ]
    latencies, number_latencies = [], []
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["DIGIT_APP_DATA_DIR"] = data_dir
        with streamlit_server({"DIGIT_APP_DATA_DIR": data_dir}) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            canvas = page.locator("canvas.upper-canvas")
            canvas.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)

            def stroke_on(stroke: list[tuple[float, float]]) -> None:
                box = canvas.bounding_box()
                page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x, box["y"] + y)
                page.mouse.up()

            def timed(strokes: list[list[tuple[float, float]]], into: list[float]) -> None:
                for k, stroke in enumerate(strokes[:-1]):
                    stroke_on(stroke)
                    wait_for_strokes(page, k + 1)
                page.evaluate(LATENCY_WATCH, [len(strokes), 20000])
                stroke_on(strokes[-1])
                ms = page.evaluate("() => window.__latency")
                if ms >= 0:
                    into.append(ms)
                page.get_by_role("button", name="Reset canvas & history").click()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                    ".some(e => e.innerText.trim() === '–') && !document.querySelector('[data-stale=\"true\"]')",
                    timeout=20_000,
                )

            for sample in samples:
                timed(strokes_on_canvas(sample)[:1], latencies)
            for strokes in numbers:
                timed(strokes, number_latencies)
    lat = np.array(latencies)
    rows = [
        "| figure | value | target |",
        "|---|---|---|",
        f"| pen-up to prediction shown, p50 | **{np.percentile(lat, 50):.0f} ms** | <= 350 ms |",
        f"| pen-up to prediction shown, p95 | **{np.percentile(lat, 95):.0f} ms** | <= 600 ms |",
        f"| drawings timed (timeouts) | {len(lat)} ({len(samples) - len(lat)}) | |",
    ]
    if number_latencies:
        num = np.array(number_latencies)
        rows += [
            f"| joined 4-digit number, pen-up to prediction shown, p50 | **{np.percentile(num, 50):.0f} ms** | <= 350 ms |",
            f"| joined 4-digit number, pen-up to prediction shown, p95 | **{np.percentile(num, 95):.0f} ms** | <= 600 ms |",
            f"| numbers timed (timeouts) | {len(num)} ({len(numbers) - len(num)}) | |",
        ]
    body = (
        "Headless Debian Chromium driving a real `streamlit run` server on this machine; single-stroke "
        "pendigits drawings replayed as mouse moves, and joined 4-digit numbers of train writers'"
        " strokes (the last stroke timed); time from the `mouseup` to the finished run.\n\n" + "\n".join(rows)
    )
    print(body)
    write_section("browser_latency", "Latency in the browser (Draw page)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
