"""Does each special case of the reading path still pay? Measured on validation writers.

In: the served model, and the train splits' validation writers (the writer-disjoint slice the
trainer holds out: `TrainConfig.val_writer_fraction` and `seed`), read through the app's own
paths: pen samples redrawn as the Draw page redraws them (pendigits also as an uploaded
screenshot's bold pixels), scans as uploads.
Out: a markdown table, one row per rule switched off, with the accuracy on each slice and its
change from the path as served. Dev and benchmark writers are never read here: the decision to
keep or drop a rule is taken on validation writers only.

    python -m benchmarks.rules [--model-dir DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from benchmarks.handwriting import CANVAS, canvas_strokes, handwriting_dir
from benchmarks.handwriting import render_strokes as bold_pixels
from benchmarks.report import write_section
from digit_app.config import get_settings
from digit_app.predictor import Predictor
from digit_app.reading import clean, ink, normalize, pipeline
from digit_app.recognize import recognize_batch
from digit_app.strokes import render_strokes
from training.config import TrainConfig
from training.handwriting import TRAIN, load_set
from training.mixing import split_by_writer, train_samples


def _keep(mask: np.ndarray, *args, **kwargs) -> np.ndarray:
    return mask


def _same(cropped: np.ndarray, *args, **kwargs) -> np.ndarray:
    return cropped


# rule -> the module attributes that switch it off
RULES: dict[str, list[tuple[object, str, Callable]]] = {
    "ruled-line removal": [(clean, "remove_lines", _keep), (ink, "remove_lines", _keep)],
    "border-sliver removal": [(clean, "remove_border_slivers", _keep)],
    "stroke thinning/thickening": [(normalize, "adjust_stroke", _same), (pipeline, "adjust_stroke", _same)],
}


@contextlib.contextmanager
def switched_off(rule: str) -> Iterator[None]:
    saved = [(module, name, getattr(module, name)) for module, name, _ in RULES[rule]]
    try:
        for module, name, stand_in in RULES[rule]:
            setattr(module, name, stand_in)
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def on_ruled_paper(image: np.ndarray) -> np.ndarray:
    """The scan on a ruled sheet: a printed line through its lower part, one above it."""
    paper = image.copy()
    h = paper.shape[0]
    ink = int(paper.min()) + (int(np.median(paper)) - int(paper.min())) // 3
    for y in (int(0.08 * h), int(0.88 * h)):
        paper[y : y + max(2, h // 60)] = np.minimum(paper[y : y + max(2, h // 60)], ink)
    return paper


def in_a_cell(image: np.ndarray) -> np.ndarray:
    """The scan inside a form's printed cell: a box drawn at the image's border."""
    paper = image.copy()
    h, w = paper.shape[:2]
    ink = int(paper.min())
    t = max(2, min(h, w) // 50)
    paper[:t], paper[-t:], paper[:, :t], paper[:, -t:] = ink, ink, ink, ink
    return paper


def validation_slices(root: Path, cfg: TrainConfig) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """Each set's validation writers, as the app receives their digits."""
    out: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    for name in ("pendigits", "unipen", "scans"):
        samples = train_samples(load_set(name, (TRAIN,), root, progress=False))
        _, held, _ = split_by_writer(samples, cfg.val_writer_fraction, cfg.seed)
        labels = np.array([s.label for s in held])
        if name == "scans":
            out[name] = ([s.image for s in held], labels)
            out["scans-ruled"] = ([on_ruled_paper(s.image) for s in held], labels)
            out["scans-in-cells"] = ([in_a_cell(s.image) for s in held], labels)
            continue
        fit = name == "unipen"
        out[name] = (
            [
                render_strokes(canvas_strokes(list(s.strokes), y_up=False, fit=fit), (CANVAS, CANVAS))
                for s in held
            ],
            labels,
        )
        if name == "pendigits":
            out["pendigits-pixels"] = ([bold_pixels(list(s.strokes), y_up=False) for s in held], labels)
    return out


def accuracy(predictor: Predictor, images: list[np.ndarray], labels: np.ndarray) -> float:
    read = [r.digits for r in recognize_batch(images, predictor, single=True)]
    return float(np.mean([d == str(y) for d, y in zip(read, labels, strict=True)]))


def measure(predictor: Predictor, slices: dict) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    rows["as served"] = {k: accuracy(predictor, *v) for k, v in slices.items()}
    for rule in RULES:
        with switched_off(rule):
            rows[f"{rule} (off)"] = {k: accuracy(predictor, *v) for k, v in slices.items()}
    return rows


def table(rows: dict[str, dict[str, float]], slices: dict, version: int) -> str:
    names = list(slices)
    served = rows["as served"]
    lines = [
        f"Model version {version}. Each row switches one rule off; the change is in points against",
        "the path as served. Validation writers only: dev figures are in the section above.",
        "",
        "| reading path | " + " | ".join(f"{n} ({len(slices[n][1])})" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, accs in rows.items():
        cells = [
            f"{100 * accs[n]:.2f}%"
            + ("" if label == "as served" else f" ({100 * (accs[n] - served[n]):+.2f})")
            for n in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model folder (default: the served one)."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the table without updating BENCHMARKS.md."
    )
    args = parser.parse_args(argv)
    predictor = Predictor.load(args.model_dir or get_settings().model_dir)
    trained = predictor.card.get("config", {})
    cfg = TrainConfig(
        seed=trained.get("seed", TrainConfig.seed),
        val_writer_fraction=trained.get("val_writer_fraction", TrainConfig.val_writer_fraction),
    )
    slices = validation_slices(handwriting_dir(), cfg)  # the writers this version never learned from
    text = table(measure(predictor, slices), slices, predictor.version)
    print(text)
    if not args.no_write:
        write_section("rules", "Special cases of the reading path, on validation writers", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
