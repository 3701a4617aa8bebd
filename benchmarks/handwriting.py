"""Accuracy of the whole pipeline (decode -> preprocess -> model) on real handwriting.

    python -m benchmarks.handwriting [--dataset pendigits scans ...] [--limit N] [--model-dir DIR]

Data: $HANDWRITING_DIR (default <repo>/../shared/handwriting) and MNIST from $MNIST_DIR
(default <repo>/../shared/mnist). Only what no model trains on is measured: the dev writers of
each set, the semeion collection, the cheques (a benchmark set) and MNIST's test set. A digit
the model is unsure about counts as wrong, as does an image in which no digit was found.

  pendigits  dev writers 25-30, pen trajectories as the Draw page reads them: the tablet's
             500x500 box scaled into the 280x280 canvas and the strokes redrawn from their
             paths (`digit_app.strokes`), read as one digit; pendigits-fit: each drawing
             scaled to fill the canvas, as people draw on it; pendigits-pixels: the canvas's
             own pixels with an 18 px pen (a screenshot of a drawing, uploaded);
             pendigits-page: the redrawn strokes read in multi-digit mode, as the Draw page
             reads them (a drawing read as two digits is wrong)
  unipen     UNIPEN's 31 dev writers (without the samples its curators marked suspect), each
             drawing filling the canvas, redrawn and read as one digit; unipen-page: in
             multi-digit mode
  scans      the dev writers' scanned cells (0006, 0007), one digit each, as uploaded
  cheques    courtesy amounts: whole string exact, per digit (edit distance), and per digit
             with the true boxes (recognition alone, without segmentation)
  semeion    16x16 binary bitmaps (a collection no model trains on); optdigits: the
             writer-independent file (.windep), 32x32 binary bitmaps
  mnist      the MNIST test set uploaded as 28x28 images, next to the raw model's accuracy
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digit_app.config import PROJECT_ROOT, get_settings
from digit_app.ctc import edit_distance
from digit_app.imageio import ImageError, decode_image
from digit_app.reading.pipeline import preprocess_single
from digit_app.recognize import recognize
from digit_app.strokes import render_strokes as redraw_strokes
from training.handwriting import DEV, load_set

DATASETS = (
    "pendigits",
    "pendigits-page",
    "pendigits-fit",
    "pendigits-pixels",
    "unipen",
    "unipen-page",
    "scans",
    "cheques",
    "semeion",
    "optdigits",
    "mnist",
)
CANVAS = 280
BRUSH = 18
MARGIN = 20
FIT_MARGIN = 40


def handwriting_dir() -> Path:
    value = os.environ.get("HANDWRITING_DIR", "").strip()
    return Path(value).expanduser() if value else PROJECT_ROOT.parent / "shared" / "handwriting"


def mnist_dir() -> Path:
    value = os.environ.get("MNIST_DIR", "").strip()
    return Path(value).expanduser() if value else PROJECT_ROOT.parent / "shared" / "mnist"


@dataclass
class Score:
    name: str
    n: int = 0
    correct: int = 0
    unsure: int = 0
    missing: int = 0  # no digit found (or the wrong number of digits)
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
    wrong: list[tuple[np.ndarray, int, int, str]] = field(default_factory=list)  # image, truth, got, id

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.n if self.n else 0.0


# --- data sets: each yields (id, input image, label[, strokes]) ------------------------------


def canvas_strokes(
    strokes: list, box: tuple[int, int] = (500, 500), y_up: bool = True, fit: bool = False
) -> list[np.ndarray]:
    """Pen strokes in canvas pixels: the tablet's whole box scaled into the canvas (a small
    drawing stays small), or with `fit` the drawing itself scaled to fill the canvas, as a
    person drawing on the canvas would."""
    arrays = [np.array(stroke, np.float64).reshape(-1, 2) for stroke in strokes]
    for pts in arrays:
        if y_up:
            pts[:, 1] = box[1] - pts[:, 1]
    if fit:
        every = np.concatenate(arrays)
        lo, hi = every.min(axis=0), every.max(axis=0)
        s = (CANVAS - 2 * FIT_MARGIN) / max(float((hi - lo).max()), 1.0)
        offset = CANVAS / 2.0 - (lo + hi) / 2.0 * s
    else:
        s = (CANVAS - 2 * MARGIN) / max(box)
        offset = np.array([MARGIN, MARGIN], np.float64)
    return [pts * s + offset for pts in arrays]


def render_strokes(
    strokes: list, box: tuple[int, int] = (500, 500), y_up: bool = True, fit: bool = False
) -> np.ndarray:
    """The canvas's own pixels: the strokes painted with an 18 px pen (what a screenshot holds)."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    for pts in canvas_strokes(strokes, box, y_up, fit):
        pts = np.round(pts * 16).astype(np.int32)  # 4 fractional bits
        if len(pts) == 1:
            cv2.circle(canvas, tuple(pts[0]), BRUSH // 2 * 16, 255, -1, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(canvas, [pts], False, 255, BRUSH, cv2.LINE_AA, shift=4)
    return canvas


def _pen(
    name: str, root: Path, fit: bool = False, pixels: bool = False
) -> Iterator[tuple[str, np.ndarray, int]]:
    """A pen set's dev writers on the canvas: the strokes redrawn as the Draw page redraws them
    (and the strokes, which the pen model reads), or with `pixels` the canvas's own bold pixels. pendigits keeps its tablet's box (a small
    drawing stays small); UNIPEN's sources have no common box, so each drawing fills the canvas.
    UNIPEN samples its curators found suspect are left out."""
    box = (500, 500)
    for s in load_set(name, (DEV,), root, progress=False).samples:
        if s.suspect is not None:
            continue
        strokes = canvas_strokes(list(s.strokes), box, False, fit)
        if pixels:  # a screenshot: pixels only, no strokes for the pen model
            yield s.ident, render_strokes(list(s.strokes), box, False, fit), s.label, None
        else:
            yield s.ident, redraw_strokes(strokes, (CANVAS, CANVAS)), s.label, strokes


def pendigits(root: Path, fit: bool = False, pixels: bool = False) -> Iterator[tuple[str, np.ndarray, int]]:
    return _pen("pendigits", root, fit, pixels)


def pendigits_fit(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return pendigits(root, fit=True)


def pendigits_pixels(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return pendigits(root, pixels=True)


def unipen(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return _pen("unipen", root, fit=True)


def _images(name: str, root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    """An image set's dev samples as they are (scans decoded as an upload is; bitmaps raw)."""
    for s in load_set(name, (DEV,), root, progress=False).samples:
        yield s.ident, s.image, s.label


def scans(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return _images("scans", root)


def semeion(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return _images("semeion", root)


def optdigits(root: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    return _images("optdigits", root)


# --- running ---------------------------------------------------------------------------------


def _predict(predictor, images: list[np.ndarray]) -> np.ndarray:
    if not images:
        return np.zeros((0, 10))
    return predictor.predict_probabilities(np.stack(images).astype(np.float32)[..., None])


def score_single(name: str, samples: Iterator, predictor, limit: int | None, keep_wrong: int = 0) -> Score:
    sc = Score(name)
    t0 = time.perf_counter()
    ids, images, labels, missing_ids, drawings = [], [], [], [], []
    for i, (sid, data, label, *strokes) in enumerate(samples):
        if limit is not None and i >= limit:
            break
        sc.n += 1
        try:
            gray = decode_image(data, sid) if isinstance(data, bytes) else data
        except ImageError:
            sc.missing += 1
            continue
        st = preprocess_single(gray)
        if st is None:
            sc.missing += 1
            missing_ids.append(sid)
            continue
        ids.append(sid)
        images.append(st.final)
        labels.append(label)
        drawings.append(strokes[0] if strokes else None)
    probs = _predict(predictor, images)
    if any(d is not None for d in drawings):
        probs = predictor.blend_pen(probs, drawings)
    threshold = predictor.unsure_threshold
    for sid, img, label, p in zip(ids, images, labels, probs):
        got = int(p.argmax())
        unsure = p[got] < threshold
        sc.unsure += int(unsure)
        if got == label and not unsure:
            sc.correct += 1
        elif len(sc.wrong) < keep_wrong:
            sc.wrong.append((img, label, got if not unsure else -1, sid))
    sc.seconds = time.perf_counter() - t0
    if missing_ids:
        sc.extra["no digit"] = ", ".join(missing_ids[:5])
    return sc


def score_page(name: str, samples: Iterator, predictor, limit: int | None) -> Score:
    """Each drawing read as the Draw page reads it: `recognize` in multi-digit mode, whole answer."""
    from digit_app.recognize import recognize_batch

    sc = Score(name)
    t0 = time.perf_counter()
    chunk: list[tuple[np.ndarray, int, list | None]] = []

    def flush() -> None:
        images, drawings = [c[0] for c in chunk], [c[2] for c in chunk]
        for result, (_, label, _) in zip(
            recognize_batch(images, predictor, single=False, strokes=drawings), chunk
        ):
            sc.correct += int(result.digits == str(label))
            sc.unsure += int("?" in result.digits)
            sc.missing += int(len(result.digits) != 1)
        chunk.clear()

    for i, (_, image, label, strokes) in enumerate(samples):
        if limit is not None and i >= limit:
            break
        sc.n += 1
        chunk.append((image, label, strokes))
        if len(chunk) == 256:
            flush()
    flush()
    sc.seconds = time.perf_counter() - t0
    return sc


def cheque_rows(root: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The cheques' label rows: file, digits, and the true box of each digit."""
    with open(root / "cheques" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if limit is None else rows[:limit]


def cheque_pairs(root: Path, limit: int | None = None) -> Iterator[tuple[np.ndarray, str]]:
    """(picture as decoded for an upload, the digits written) of each cheque amount."""
    folder = root / "cheques"
    for row in cheque_rows(root, limit):
        yield decode_image((folder / "images" / row["file"]).read_bytes(), row["file"]), row["digits"].strip()


def score_cheques(root: Path, predictor, limit: int | None, keep_wrong: int = 0) -> list[Score]:
    folder = root / "cheques"
    rows = cheque_rows(root, limit)
    whole, digits, boxed = Score("cheques string"), Score("cheques digits"), Score("cheques true boxes")
    t0 = time.perf_counter()
    threshold = predictor.unsure_threshold
    box_images, box_labels = [], []
    for row in rows:
        truth = row["digits"].strip()
        gray = decode_image((folder / "images" / row["file"]).read_bytes(), row["file"])
        result = recognize(gray, predictor, single=False)  # as an upload is read
        paper = int(np.median(gray))
        got = result.digits
        whole.n += 1
        whole.correct += int(got == truth)
        whole.missing += int(len(got) != len(truth))
        if got != truth and len(whole.wrong) < keep_wrong:
            strip = np.concatenate([d.image28 for d in result.detail], axis=1) if got else np.zeros((28, 28))
            whole.wrong.append(
                (strip, int(truth[:9] or 0), int(got.replace("?", "9")[:9] or -1), row["file"])
            )
        digits.n += len(truth)
        digits.correct += max(0, len(truth) - edit_distance(got, truth))
        digits.unsure += got.count("?")
        for d, x, y, w, h in json.loads(row["boxes_digit_x_y_w_h"]):
            # Only the box's pixels, on a margin of plain paper: recognition without segmentation.
            pad = max(2, int(0.15 * h))
            cell = gray[max(0, y) : y + h, max(0, x) : x + w]
            st = preprocess_single(
                cv2.copyMakeBorder(cell, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=paper)
            )
            boxed.n += 1
            if st is None:
                boxed.missing += 1
                continue
            box_images.append(st.final)
            box_labels.append(int(d))
    for p, label in zip(_predict(predictor, box_images), box_labels):
        unsure = p.max() < threshold
        boxed.unsure += int(unsure)
        boxed.correct += int(int(p.argmax()) == label and not unsure)
    whole.seconds = digits.seconds = boxed.seconds = time.perf_counter() - t0
    return [whole, digits, boxed]


def score_mnist(predictor, limit: int | None, keep_wrong: int = 0) -> list[Score]:
    from training.data import load_mnist

    m = load_mnist(data_dir=mnist_dir(), progress=False)
    x, y = m.x_test, m.y_test
    if limit is not None:
        x, y = x[:limit], y[:limit]
    raw = Score("mnist raw model")
    t0 = time.perf_counter()
    p = predictor.predict_probabilities(x.astype(np.float32)[..., None] / 255.0)
    raw.n = len(y)
    raw.correct = int(((p.argmax(1) == y) & (p.max(1) >= predictor.unsure_threshold)).sum())
    raw.unsure = int((p.max(1) < predictor.unsure_threshold).sum())
    raw.seconds = time.perf_counter() - t0
    via = score_single(
        "mnist via pipeline",
        ((f"mnist{i}", img, int(lab)) for i, (img, lab) in enumerate(zip(x, y))),
        predictor,
        None,
        keep_wrong,
    )
    return [raw, via]


def save_wrong(scores: list[Score], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for sc in scores:
        if not sc.wrong:
            continue
        tiles = []
        for img, truth, got, _ in sc.wrong:
            tile = cv2.cvtColor((np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
            tile = cv2.resize(tile, (tile.shape[1] * 3, tile.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
            cv2.putText(tile, f"{truth}>{got}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
            tiles.append(tile)
        width = max(t.shape[1] for t in tiles)
        tiles = [np.pad(t, ((0, 2), (0, width - t.shape[1]), (0, 0))) for t in tiles]
        cols = max(1, 1200 // width)
        rows = [
            np.concatenate(
                tiles[i : i + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[i : i + cols])), axis=1
            )
            for i in range(0, len(tiles), cols)
        ]
        cv2.imwrite(str(folder / f"{sc.name.replace(' ', '_')}.png"), np.concatenate(rows, axis=0))
        with open(folder / f"{sc.name.replace(' ', '_')}.txt", "w") as f:
            for _, truth, got, sid in sc.wrong:
                f.write(f"{sid}\t{truth}\t{got}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--limit", type=int, default=None, help="At most this many samples per data set.")
    parser.add_argument("--model-dir", type=Path, default=None, help="Default: the served model.")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--save-wrong", type=Path, default=None, help="Write montages of the errors here.")
    parser.add_argument("--no-pen", action="store_true", help="Read drawings from their pixels alone.")
    args = parser.parse_args(argv)

    from digit_app.predictor import Predictor

    settings = get_settings()
    model_dir = args.model_dir or settings.model_dir
    predictor = Predictor.load(model_dir, args.version, settings.unsure_threshold, pen=not args.no_pen)
    root = handwriting_dir()
    keep = 200 if args.save_wrong else 0
    scores: list[Score] = []
    for name in args.dataset:
        if name == "cheques":
            scores += score_cheques(root, predictor, args.limit, keep)
        elif name == "mnist":
            scores += score_mnist(predictor, args.limit, keep)
        elif name == "pendigits-page":
            scores.append(score_page(name, pendigits(root), predictor, args.limit))
        elif name == "unipen-page":
            scores.append(score_page(name, unipen(root), predictor, args.limit))
        else:
            source = {
                "pendigits": pendigits,
                "pendigits-fit": pendigits_fit,
                "pendigits-pixels": pendigits_pixels,
                "unipen": unipen,
                "scans": scans,
                "semeion": semeion,
                "optdigits": optdigits,
            }[name]
            scores.append(score_single(name, source(root), predictor, args.limit, keep))
        last = scores[-1]
        print(f"  {last.name}: {last.accuracy:.2f}% ({last.seconds:.0f}s)", file=sys.stderr, flush=True)

    print(
        f"\nmodel {predictor.model_dir.name} v{predictor.version}, unsure below {predictor.unsure_threshold},"
        f" pen model {predictor.pen_version if predictor.has_pen else 'not used'}"
    )
    print(f"{'data set':<20} {'n':>6} {'accuracy':>9} {'unsure':>7} {'missed':>7} {'time':>6}")
    for sc in scores:
        print(
            f"{sc.name:<20} {sc.n:>6} {sc.accuracy:>8.2f}% {sc.unsure:>7} {sc.missing:>7} {sc.seconds:>5.0f}s"
        )
    if args.save_wrong:
        save_wrong(scores, args.save_wrong)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
