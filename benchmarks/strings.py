"""Reading digit strings: synthetic numbers built from held-out MNIST digits.

    python -m benchmarks.strings [--n 600] [--seed 0] [--touching T [--marks M]] [--slant 0.25] [--save-examples DIR]

Each string (1 to 7 digits, as on a cheque) is made of MNIST validation digits, the ones
training holds out for model selection (the served model never learned from them). The
digits are scaled to a common height with some jitter, set on a baseline that wanders a
little, and spaced as people write: apart, or touching and overlapping (a share of the
neighbours: none, 35% and all of them, or `--touching`); the whole line leans. In the last
setting half the strings have a separator between two digits (".", ",", "-") and half an end
mark ("-", "="), which are not digits and must not be read. The page is
grey paper with dark ink and sensor noise. The string is read by the same
`recognize` as uploads and cheques.

This is where the segmentation's settings are chosen, so that the real cheques
(`benchmarks.handwriting --dataset cheques`) stay a held-out measure.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.handwriting import _edit_distance
from benchmarks.report import write_section
from digit_app.config import get_settings
from digit_app.recognize import recognize

HEIGHT = 64  # px, a digit's height on the page


@dataclass
class StringScore:
    n: int = 0
    exact: int = 0
    count_right: int = 0
    digits: int = 0
    digits_right: int = 0  # by edit distance
    seconds: float = 0.0

    def row(self) -> dict[str, float]:
        return {
            "strings": self.n,
            "exact": 100.0 * self.exact / max(1, self.n),
            "count": 100.0 * self.count_right / max(1, self.n),
            "per_digit": 100.0 * self.digits_right / max(1, self.digits),
        }


def _ink_crop(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img > 20)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _mark(kind: str, height: float) -> tuple[np.ndarray, float]:
    """A separator or end mark drawn with a digit's pen: its ink and its top, relative to the baseline."""
    pen = max(2, int(round(0.1 * height)))
    if kind == ".":
        side = 2 * pen
        img = np.zeros((side, side), np.float32)
        cv2.circle(img, (side // 2, side // 2), pen // 2 + 1, 255.0, -1, cv2.LINE_AA)
        return img, -side
    if kind == ",":
        img = np.zeros((int(0.3 * height), 2 * pen + 4), np.float32)
        cv2.line(img, (img.shape[1] - pen, pen), (pen, img.shape[0] - pen), 255.0, pen, cv2.LINE_AA)
        return img, -0.12 * height
    width = int(height * 0.45)
    if kind == "-":
        img = np.zeros((2 * pen, width), np.float32)
        cv2.line(img, (pen // 2, pen), (width - pen // 2, pen), 255.0, pen, cv2.LINE_AA)
        return img, -0.55 * height
    img = np.zeros((int(0.3 * height), width), np.float32)  # "="
    for y in (pen, img.shape[0] - pen):
        cv2.line(img, (pen // 2, y), (width - pen // 2, y), 255.0, pen, cv2.LINE_AA)
    return img, -0.62 * height


def make_string(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    touching: float,
    slant: float,
    marks: float = 0.0,
) -> tuple[np.ndarray, str]:
    """A grey page with 1-7 MNIST digits written side by side, and the string it shows.

    With probability `marks` a separator (".", ",", "-") is written between two of the digits,
    and, independently, an end mark ("-" or "=") after the last: they are not part of the string.
    """
    n = int(rng.integers(1, 8))
    picks = rng.integers(0, len(images), n)
    height = HEIGHT * rng.uniform(0.85, 1.15)
    items: list[tuple[np.ndarray, float | None]] = []  # ink, top relative to the baseline (None: a digit)
    for i in picks:
        crop = _ink_crop(images[i]).astype(np.float32)
        h = height * rng.uniform(0.9, 1.1)
        w = max(2, int(round(crop.shape[1] * h / crop.shape[0])))
        items.append((cv2.resize(crop, (w, int(round(h))), interpolation=cv2.INTER_LINEAR), None))
    if marks and n > 1 and rng.random() < marks:
        items.insert(int(rng.integers(1, n)), _mark(str(rng.choice([".", ",", "-"])), height))
    if marks and rng.random() < marks:
        items.append(_mark(str(rng.choice(["-", "="])), height))
    margin = int(0.3 * height)
    page_w = sum(g.shape[1] for g, _ in items) + int(0.4 * height * len(items)) + 2 * margin
    page_h = int(1.5 * height) + 2 * margin
    ink = np.zeros((page_h, page_w), np.float32)
    x = margin
    base = margin + int(1.2 * height)
    for k, (g, top) in enumerate(items):
        if k:
            digits = top is None and items[k - 1][1] is None
            if digits and rng.random() < touching:  # joined or overlapping, as in fast writing
                x -= int(rng.uniform(0.0, 0.18) * height)
            else:
                x += int(rng.uniform(0.05, 0.35) * height)
        y = base - g.shape[0] if top is None else base + top
        y = int(np.clip(y + int(rng.normal(0, 0.05) * height), 0, page_h - g.shape[0]))
        x = max(0, x)
        region = ink[y : y + g.shape[0], x : x + g.shape[1]]
        np.maximum(region, g[: region.shape[0], : region.shape[1]], out=region)
        x += g.shape[1]
    ink = ink[:, : min(page_w, x + margin)]
    if slant:  # the whole line leans, as most people's writing does (on top of each digit's own slant)
        s = rng.uniform(-slant, slant)
        pad = int(abs(s) * page_h) + 1
        # x' = x - s * y (+ s * height when s > 0): with s > 0 the top leans right.
        shear = np.float32([[1, -s, max(0.0, s) * page_h], [0, 1, 0]])
        ink = cv2.warpAffine(ink, shear, (ink.shape[1] + pad, page_h), flags=cv2.INTER_LINEAR)
    paper = rng.uniform(170, 235)
    dark = rng.uniform(20, 90)
    gray = paper - ink / 255.0 * (paper - dark) + rng.normal(0, 4, ink.shape)
    return np.clip(gray, 0, 255).astype(np.uint8), "".join(str(int(labels[i])) for i in picks)


def validation_digits(card: dict) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST images the model's own training run held out, as its card records the split.

    Each seed holds out different images, so the default split would be training data for a
    version trained with another seed. A retrained version replays MNIST training images,
    some of them from this split: its figures here are not on unseen digits.
    """
    from benchmarks.handwriting import mnist_dir
    from training.data import held_out_for_card, load_mnist

    m = load_mnist(data_dir=mnist_dir(), progress=False)
    _, val, _ = held_out_for_card(card, m.y_train, len(m.x_test))
    return m.x_train[val], m.y_train[val]


def _same_split(predictor) -> bool:
    """Whether the checker kept out the same MNIST images as the version read (same split)."""
    from digit_app.model_store import read_card
    from training.data import split_settings

    version = predictor.checker_card.get("data", {}).get("digit_model_version")
    if version is None:
        return False
    other = read_card(predictor.model_dir, int(version)) if version != predictor.version else predictor.card
    return split_settings(other) == split_settings(predictor.card)


def score_strings(
    predictor,
    n: int,
    seed: int,
    touching: float,
    slant: float,
    examples: Path | None = None,
    marks: float = 0.0,
) -> StringScore:
    images, labels = validation_digits(predictor.card)
    rng = np.random.default_rng(seed)
    score = StringScore()
    t0 = time.perf_counter()
    for k in range(n):
        gray, truth = make_string(images, labels, rng, touching, slant, marks)
        got = recognize(gray, predictor, single=False).digits  # as an upload is read
        score.n += 1
        score.exact += int(got == truth)
        score.count_right += int(len(got) == len(truth))
        score.digits += len(truth)
        score.digits_right += max(0, len(truth) - _edit_distance(got, truth))
        if examples is not None and k < 40:
            examples.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(examples / f"{k:03d}_{truth}_{got or 'none'}.png"), gray)
    score.seconds = time.perf_counter() - t0
    return score


SETTINGS = (  # name, share of touching neighbours, chance of a separator and of an end mark
    ("apart", 0.0, 0.0),
    ("mixed: 35% of neighbours touch", 0.35, 0.0),
    ("every neighbour touches", 1.0, 0.0),
    ("mixed, with separators (. , -) and end marks (- =)", 0.35, 0.5),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.strings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=600, help="Strings to read in each setting.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the strings' digits and layout.")
    parser.add_argument(
        "--touching",
        type=float,
        default=None,
        help="Only this share of touching neighbours (default: apart, 35%% and all), not written to BENCHMARKS.md.",
    )
    parser.add_argument(
        "--marks", type=float, default=0.0, help="With --touching: chance of a separator, and of an end mark."
    )
    parser.add_argument(
        "--slant", type=float, default=0.25, help="Largest lean of the whole line (horizontal shift per row)."
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="Default: the served model.")
    parser.add_argument("--version", type=int, default=None, help="Default: the served version.")
    parser.add_argument("--save-examples", type=Path, default=None, help="Write the first 40 pages here.")
    args = parser.parse_args(argv)

    from digit_app.predictor import Predictor

    settings = get_settings()
    predictor = Predictor.load(args.model_dir or settings.model_dir, args.version, settings.unsure_threshold)
    if predictor.card.get("parent_version") is not None:
        print(
            f"note: version {predictor.version} was retrained and replayed MNIST training images,"
            " some from this split: these strings are not all unseen digits",
            file=sys.stderr,
        )
    if predictor.has_checker and not _same_split(predictor):
        print(
            f"note: the one-digit checker was trained on the digits version"
            f" {predictor.checker_card.get('data', {}).get('digit_model_version')} trained on, not"
            f" version {predictor.version}'s: some of these strings' digits are its training digits",
            file=sys.stderr,
        )
    chosen = SETTINGS if args.touching is None else (("chosen", args.touching, args.marks),)
    rows = []
    for name, touching, marks in chosen:
        s = score_strings(predictor, args.n, args.seed, touching, args.slant, args.save_examples, marks)
        r = s.row()
        print(
            f"{name}: exact {r['exact']:.2f}%, digit count right {r['count']:.2f}%,"
            f" per digit {r['per_digit']:.2f}% ({s.seconds:.0f} s)",
            flush=True,
        )
        rows.append(
            f"| {name} | {s.n} | **{r['exact']:.2f}%** | {r['count']:.2f}% | {r['per_digit']:.2f}% |"
            f" {1000 * s.seconds / max(1, s.n):.0f} ms |"
        )
    if args.touching is None:
        body = (
            f"`python -m benchmarks.strings` with model {predictor.model_dir.name} v{predictor.version}:"
            f" {args.n} strings per row (seed {args.seed}), each of 1-7 MNIST validation digits"
            f" (held out from training), 54-74 px tall, the line leaning by up to {args.slant}, read by"
            " `recognize` as uploads are. An unsure digit counts as wrong.\n\n"
            "| neighbouring digits | strings | whole string exact | digit count right | per digit |"
            " time per string |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
        )
        write_section("strings", "Reading digit strings (synthetic, held-out MNIST digits)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
