"""Reading digit strings: synthetic numbers of held-out digits, and the cheques, by each reader.

    python -m benchmarks.strings [--readers segmentation string both] [--sets mnist writers draw cheques]
                                 [--n 600] [--seed 0] [--touching T [--marks M]] [--slant 0.25] [--save-examples DIR]

Readers: `segmentation` (cut into digits, each read by the digit model: `recognize` without the
string reader), `string` (the `digit_string` model alone, CTC), `both` (what the app does: both
readers, and `digit_app.decide` picks the answer).
Sets: `mnist` (below), `writers` (numbers made by the string model's own generator from other
writers' digits: the dev writers of pendigits, UNIPEN and the scans, optdigits' writer-independent
file, MNIST's test images; `benchmarks.string_sets`), `draw` (3-6 digit numbers written on the
canvas by pendigits' dev writers), `cheques` (the ORAND-CAR-A courtesy
amounts: whole string exact, and digits right by edit distance; a benchmark, measured only).

The `mnist` strings (`benchmarks.mnist_strings`) are 1-7 MNIST validation digits on grey
paper, apart, touching or overlapping (none, 35% or all neighbours, or `--touching`), the line
leaning; in the last setting with separators and end marks that must not be read.

This is where the segmentation's settings are chosen, so that the real cheques
(`benchmarks.handwriting --dataset cheques`) stay a held-out measure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.mnist_strings import make_string, validation_digits
from benchmarks.report import write_section
from digit_app.config import get_settings
from digit_app.ctc import edit_distance
from digit_app.recognize import recognize


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
    read: Callable[[np.ndarray], str] | None = None,
) -> StringScore:
    """`read` (default: the segmentation reader, as an upload is read) on n MNIST strings."""
    images, labels = validation_digits(predictor.card)
    rng = np.random.default_rng(seed)
    pairs = (make_string(images, labels, rng, touching, slant, marks) for _ in range(n))
    return score_pairs(read or segmentation_reader(predictor), pairs, examples)


def segmentation_reader(predictor) -> Callable[[np.ndarray], str]:
    return lambda gray: recognize(gray, predictor, single=False).digits


def score_pairs(read: Callable[[np.ndarray], str], pairs, examples: Path | None = None) -> StringScore:
    """Whole string, digit count and digits right of `read` on (picture, truth) pairs."""
    score = StringScore()
    t0 = time.perf_counter()
    for k, (gray, truth) in enumerate(pairs):
        got = read(gray)
        score.n += 1
        score.exact += int(got == truth)
        score.count_right += int(len(got) == len(truth))
        score.digits += len(truth)
        score.digits_right += max(0, len(truth) - edit_distance(got, truth))
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


READERS = ("segmentation", "string", "both")
SETS = ("mnist", "writers", "draw", "cheques")
WRITER_KINDS = (  # the string model's own kinds of numbers (`training.strings.compose`)
    ("pen", "cursive, pen trajectories on paper"),
    ("canvas", "pen trajectories on the Draw page's canvas"),
    ("glyph", "digit pictures (scans, optdigits, MNIST test) side by side"),
)


def make_readers(
    names: list[str], predictor, string_version: int | None
) -> dict[str, Callable[[np.ndarray], str]]:
    """Each reader asked for, as a function from a picture to the digits it shows ("?": unsure).
    `predictor` is loaded without its string reader, so `segmentation` is that reader alone."""
    from dataclasses import replace

    readers: dict[str, Callable[[np.ndarray], str]] = {}
    string_reader = None
    if {"string", "both"} & set(names):
        from digit_app.string_reader import StringReader

        settings = get_settings()
        string_reader = StringReader.load(
            settings.string_model_dir, string_version, settings.unsure_threshold
        )
    for name in names:
        if name == "segmentation":
            readers[name] = segmentation_reader(predictor)
        elif name == "string":
            readers[f"string v{string_reader.version}"] = lambda gray, r=string_reader: (
                r.read(gray).result.digits
            )
        elif name == "both":
            # What the app does: both readers, and `digit_app.decide` picks the answer.
            both = replace(predictor, string_reader=string_reader)
            readers[f"both (decided, string v{string_reader.version})"] = segmentation_reader(both)
    return readers


def _row(name: str, reader: str, s: StringScore) -> str:
    r = s.row()
    return (
        f"| {name} | {reader} | {s.n} | **{r['exact']:.2f}%** | {r['count']:.2f}% | {r['per_digit']:.2f}% |"
        f" {1000 * s.seconds / max(1, s.n):.0f} ms |"
    )


def _report(name: str, reader: str, s: StringScore) -> None:
    r = s.row()
    print(
        f"{name} / {reader}: exact {r['exact']:.2f}%, digit count right {r['count']:.2f}%,"
        f" per digit {r['per_digit']:.2f}% ({s.seconds:.0f} s)",
        flush=True,
    )


HEADER = "| numbers | reader | strings | whole string exact | digit count right | per digit | time per string |\n|---|---|---|---|---|---|---|\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.strings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--readers", nargs="+", choices=READERS, default=list(READERS), help="Readers to measure."
    )
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="Numbers to read.")
    parser.add_argument("--n", type=int, default=600, help="Strings to read in each setting or kind.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the strings' digits and layout.")
    parser.add_argument(
        "--touching",
        type=float,
        default=None,
        help="mnist: only this share of touching neighbours (default: apart, 35%% and all), not written to BENCHMARKS.md.",
    )
    parser.add_argument(
        "--marks", type=float, default=0.0, help="With --touching: chance of a separator, and of an end mark."
    )
    parser.add_argument(
        "--slant",
        type=float,
        default=0.25,
        help="mnist: largest lean of the whole line (horizontal shift per row).",
    )
    parser.add_argument("--limit", type=int, default=None, help="cheques: read only the first N.")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Digit model folder (default: the served one)."
    )
    parser.add_argument(
        "--version", type=int, default=None, help="Digit model version (default: the served one)."
    )
    parser.add_argument(
        "--string-version", type=int, default=None, help="String model version (default: the newest)."
    )
    parser.add_argument(
        "--save-examples", type=Path, default=None, help="mnist: write the first 40 pages here."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the figures, leave BENCHMARKS.md alone."
    )
    args = parser.parse_args(argv)

    from digit_app.predictor import Predictor

    settings = get_settings()
    predictor = Predictor.load(
        args.model_dir or settings.model_dir, args.version, settings.unsure_threshold, strings=False
    )
    readers = make_readers(args.readers, predictor, args.string_version)
    if "mnist" in args.sets:
        _notes(predictor)
        chosen = SETTINGS if args.touching is None else (("chosen", args.touching, args.marks),)
        rows = []
        for name, touching, marks in chosen:
            for reader, read in readers.items():
                s = score_strings(
                    predictor, args.n, args.seed, touching, args.slant, args.save_examples, marks, read
                )
                _report(name, reader, s)
                rows.append(_row(name, reader, s))
        if args.touching is None and not args.no_write:
            body = (
                f"`python -m benchmarks.strings --sets mnist` with digit model {predictor.model_dir.name}"
                f" v{predictor.version}: {args.n} strings per row (seed {args.seed}), each of 1-7 MNIST"
                " validation digits (held out from the digit model's training, and so from the string"
                " model's, which leaves out the same split), 54-74 px tall, the line leaning by up to"
                f" {args.slant}. An unsure digit counts as wrong.\n\n" + HEADER + "\n".join(rows)
            )
            write_section(
                "strings",
                "Reading digit strings (synthetic, held-out MNIST digits)",
                body,
                command="python -m benchmarks.strings --sets mnist",
            )
    rows = []
    if "writers" in args.sets:
        from benchmarks.string_sets import heldout_numbers

        for kind, what in WRITER_KINDS:
            pairs = heldout_numbers(args.n, args.seed, kind)
            for reader, read in readers.items():
                s = score_pairs(read, pairs)
                _report(what, reader, s)
                rows.append(_row(f"other writers: {what}", reader, s))
    if "draw" in args.sets:
        from benchmarks.string_sets import draw_page_numbers

        pairs = draw_page_numbers(args.n, args.seed)
        for reader, read in readers.items():
            s = score_pairs(read, pairs)
            _report("Draw page numbers", reader, s)
            rows.append(_row("Draw page: 3-6 digit numbers of pendigits dev writers (25-30)", reader, s))
    if "cheques" in args.sets:
        from benchmarks.handwriting import cheque_pairs, handwriting_dir

        for reader, read in readers.items():
            s = score_pairs(read, cheque_pairs(handwriting_dir(), args.limit))
            _report("cheques", reader, s)
            rows.append(_row("cheques (ORAND-CAR-A, benchmark)", reader, s))
    if rows and not args.no_write and args.limit is None:
        body = (
            f"`python -m benchmarks.strings --sets writers draw cheques`: {args.n} numbers of each kind"
            f" (seed {args.seed}) made by the string model's generator from digits of writers no model"
            " trains on (dev writers of pendigits, UNIPEN and the scans, optdigits' .windep, MNIST's"
            f" test images), {args.n} numbers of 3-6 digits written on the canvas by pendigits' dev"
            " writers, and the 1,080 cheque amounts. An unsure digit counts as wrong.\n\n"
            + HEADER
            + "\n".join(rows)
        )
        write_section(
            "strings_readers",
            "Reading digit strings: other writers' numbers and the cheques",
            body,
            command="python -m benchmarks.strings --sets writers draw cheques",
        )
    return 0


def _notes(predictor) -> None:
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


if __name__ == "__main__":
    raise SystemExit(main())
