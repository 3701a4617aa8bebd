"""Speed benchmark: one canvas drawing end to end in Python, batch throughput, cold start.

    python -m benchmarks.speed [--drawings 300] [--batch 10000] [--no-write]

Drawings are real pen trajectories (../shared/handwriting/pendigits) rendered the way the
canvas renders them, so preprocessing sees realistic input. One drawing is timed as the draw
page runs it: the canvas's JSON paths and RGBA in, the strokes redrawn (`read_canvas`), then
`recognize` in multi mode. The batch runs as an upload batch of single-digit images does
(`recognize_batch` of decoded grayscale images of the canvases' own pixels).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from benchmarks.report import write_section
from digit_app.config import PROJECT_ROOT


def render_canvas(sample: dict, size: int = 280, width: int = 20) -> np.ndarray:
    """RGBA as streamlit-drawable-canvas returns it: white strokes on an opaque black canvas."""
    import cv2

    from tests.handwriting import strokes_on_canvas

    canvas = np.zeros((size, size), np.uint8)
    for stroke in strokes_on_canvas(sample, size):
        pts = np.round(np.array(stroke)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 255, width, cv2.LINE_AA)
        if len(stroke) == 1:
            cv2.circle(canvas, tuple(pts[0, 0]), width // 2, 255, -1, cv2.LINE_AA)
    return np.dstack([canvas, canvas, canvas, np.full_like(canvas, 255)])


def canvas_json(sample: dict, size: int = 280, width: int = 20) -> dict:
    """The canvas's JSON for the same strokes: one fabric.js path per stroke, absolute coordinates."""
    from tests.handwriting import strokes_on_canvas

    objects = []
    for stroke in strokes_on_canvas(sample, size):
        path = [["M", *stroke[0]]] + [["L", *p] for p in stroke[1:]]
        objects.append({"type": "path", "path": path, "strokeWidth": width})
    return {"version": "7.4.0", "objects": objects}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def amount_speed(predictor, n: int) -> list[str]:
    """p50 of reading a 6-digit amount as an upload is read (both readers when the store has a
    string model): numbers made by the string model's generator from dev writers' digits, half
    digit pictures side by side, half cursive pen numbers on paper."""
    from benchmarks.string_sets import heldout_pool
    from digit_app.recognize import recognize
    from training.strings.compose import make_string

    pool, rng = heldout_pool(), np.random.default_rng(5)
    rows = []
    for kind, what in (("glyph", "digit pictures"), ("pen", "cursive pen")):
        numbers = [
            make_string(pool, rng, kind=kind, labels=[int(d) for d in rng.integers(0, 10, 6)])
            for _ in range(n // 2)
        ]
        for s in numbers[:5]:
            recognize(s.gray, predictor, single=False)
        times, right = [], 0
        for s in numbers:
            t = time.perf_counter()
            right += recognize(s.gray, predictor, single=False).digits == s.label
            times.append((time.perf_counter() - t) * 1000)
        rows.append(
            f"| a 6-digit amount ({what}, dev writers; {right} of {len(numbers)} read whole), p50 / p95"
            f" | **{pct(times, 50):.1f}** / {pct(times, 95):.1f} ms | p50 <= 50 ms |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n")[0])
    parser.add_argument("--drawings", type=int, default=300, help="Canvas drawings to time one by one.")
    parser.add_argument("--batch", type=int, default=10_000, help="Digits in the throughput batch.")
    parser.add_argument(
        "--amounts", type=int, default=200, help="6-digit amounts to time (0: skip; needs the dev sets)."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the figures, leave BENCHMARKS.md alone."
    )
    args = parser.parse_args(argv)

    from digit_app.imageio import canvas_to_gray
    from digit_app.predictor import served_predictor
    from digit_app.recognize import crops_for, recognize, recognize_batch, results_for_many
    from digit_app.strokes import read_canvas
    from tests.handwriting import pendigits

    predictor = served_predictor()
    samples = pendigits()[: args.drawings]
    canvases = [render_canvas(s) for s in samples]
    drawings = [(canvas_json(s), rgba) for s, rgba in zip(samples, canvases)]
    shape = canvases[0].shape[:2]

    def draw_page(json_data: dict, rgba: np.ndarray) -> None:
        """What the Draw page does with a drawing: pixels and strokes (read by the pen model too)."""
        gray, strokes = read_canvas(json_data, rgba, shape)
        recognize(gray, predictor, single=False, strokes=strokes)

    for json_data, rgba in drawings[:10]:  # warm-up
        draw_page(json_data, rgba)
    times = []
    for json_data, rgba in drawings:
        t = time.perf_counter()
        draw_page(json_data, rgba)
        times.append((time.perf_counter() - t) * 1000)

    # Throughput: a batch of single-digit images recognized as an upload batch is, end to end
    # (preprocessing, then the model, chunk by chunk).
    # Decoded uploads are contiguous (H, W) uint8 arrays, as `canvas_to_gray` returns.
    grays = [canvas_to_gray(c) for c in canvases]
    n = args.batch
    batch = [grays[i % len(grays)] for i in range(n)]
    recognize_batch(batch[:2049], predictor)  # warm-up: the model sees its batch sizes once
    runs = []
    for _ in range(3):  # the median of three runs, so one hiccup of a shared machine does not decide
        t = time.perf_counter()
        results = recognize_batch(batch, predictor, single=True)
        runs.append(time.perf_counter() - t)
    t_batch = float(np.median(runs))
    throughput = n / t_batch
    missed = sum(not r.found for r in results)
    # The two parts alone, one after the other, for the record.
    t = time.perf_counter()
    crops = [crops_for(g, True, predictor, stages=False) for g in batch]
    t_pre = time.perf_counter() - t
    t = time.perf_counter()
    results_for_many(crops, predictor)
    t_pred = time.perf_counter() - t

    amount_rows = amount_speed(predictor, args.amounts) if args.amounts else []

    # Cold start: a fresh process importing the app's core, loading the model, first prediction.
    code = (
        "import time; t=time.perf_counter();"
        "import numpy as np;"
        "from digit_app.predictor import served_predictor; from digit_app.recognize import recognize;"
        "p=served_predictor(); img=np.zeros((280,280),np.uint8); img[60:220,130:150]=255;"
        "recognize(img, p, single=False); print(time.perf_counter()-t)"
    )
    cold = float(
        subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    rows = [
        "| figure | value | target |",
        "|---|---|---|",
        f"| one canvas drawing, preprocessing + prediction, p50 | **{pct(times, 50):.2f} ms** | <= 3 ms |",
        f"| one canvas drawing, preprocessing + prediction, p95 | **{pct(times, 95):.2f} ms** | <= 10 ms |",
        f"| batch throughput ({n:,} single-digit images, `recognize_batch` {t_batch:.2f} s, median of 3; alone: "
        f"preprocessing {t_pre:.2f} s, prediction {t_pred:.2f} s) | **{throughput:,.0f} digits/s** "
        "| >= 3,000 digits/s |",
        f"| cold start: new process to first prediction | **{cold:.1f} s** | <= 10 s |",
        *amount_rows,
    ]
    body = (
        f"{len(times)} pendigits drawings as the canvas sends them (JSON paths and a 280x280 RGBA), timed one "
        f"by one as the draw page runs them (strokes redrawn by `read_canvas`, then `recognize` in multi mode with the strokes, which the pen model reads when the store has one); the batch cycles through them ({missed} without a digit). "
        f"Model {predictor.model_dir.name} v{predictor.version} run on {predictor.runtime} "
        "(`DIGIT_APP_TFLITE=0`: always the SavedModel).\n\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("speed", "Recognition speed", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
