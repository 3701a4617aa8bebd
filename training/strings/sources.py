"""The digits synthetic strings are built from, by writer: pen trajectories and digit pictures.

In: loaded real-handwriting sets and MNIST arrays. Out: a `Pool` per use (training, and the
validation slice of writers held out of training), from which a string draws its digits, all
from one writer where the set names writers.

Why: a string of one writer's digits looks like real writing (one slant, one pen, one way of
making a 7); and the checkpoint must be chosen on writers the model never learned from, so
every set that names its writers gives a few of them to validation and none of their digits
to training (`training.mixing.split_by_writer`, as the digit model does). Only train splits
come here for training (`training.mixing.train_samples` refuses anything else); the held-out
benchmark builds its own pool from dev writers and MNIST's test images (`benchmarks.strings`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from training.handwriting import UNKNOWN_WRITER, Sample
from training.strings.pen import unit_strokes

GLYPH_SETS = ("mnist", "scans", "optdigits", "mfeat")  # sets of digit pictures
PEN_SETS = ("pendigits", "unipen")  # sets of pen trajectories


@dataclass
class PenDigit:
    label: int
    writer: str
    strokes: list[np.ndarray]  # the drawing in its own units, y down


@dataclass
class Glyphs:
    """One picture set's digits as ink (white on black, uint8, cropped to the ink)."""

    inks: list[np.ndarray]
    labels: np.ndarray
    writers: list[str]


@dataclass
class Pool:
    """Digits to build strings from, indexed by label and by writer."""

    pen: list[PenDigit] = field(default_factory=list)
    glyphs: dict[str, Glyphs] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self._pen_by_label: dict[int, list[int]] = defaultdict(list)
        self._pen_by_writer: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, d in enumerate(self.pen):
            self._pen_by_label[d.label].append(i)
            if d.writer != UNKNOWN_WRITER:
                self._pen_by_writer[(d.writer, d.label)].append(i)
        self._glyph_by_label = {
            name: {k: np.flatnonzero(g.labels == k) for k in range(10)} for name, g in self.glyphs.items()
        }

    def counts(self) -> dict[str, int]:
        return {"pen": len(self.pen), **{k: len(g.labels) for k, g in self.glyphs.items()}}

    def writers(self) -> dict[str, int]:
        """Distinct writers per kind of digit (those without an id are not counted)."""
        pen = {d.writer for d in self.pen if d.writer != UNKNOWN_WRITER}
        out = {"pen": len(pen)}
        for k, g in self.glyphs.items():
            out[k] = len({w for w in g.writers if w != UNKNOWN_WRITER})
        return out

    def has_pen(self) -> bool:
        """Whether pen drawings of every digit are at hand (a string may need any)."""
        return all(self._pen_by_label.get(k) for k in range(10))

    def glyph_sets(self) -> list[str]:
        """The picture sets holding every digit."""
        return [name for name, by in self._glyph_by_label.items() if all(len(by[k]) for k in range(10))]

    def pen_digits(self, labels: Sequence[int], rng: np.random.Generator) -> list[int]:
        """Indices (in `pen`) of drawings of these digits, by the writer of a random first one
        where that writer drew them."""
        first = self.pen[int(rng.integers(len(self.pen)))]
        out = []
        for k in labels:
            own = self._pen_by_writer.get((first.writer, k)) if first.writer != UNKNOWN_WRITER else None
            choices = own or self._pen_by_label[k]
            out.append(choices[int(rng.integers(len(choices)))])
        return out

    def glyph_digits(self, name: str, labels: Sequence[int], rng: np.random.Generator) -> list[int]:
        """Indices (in `glyphs[name]`) of pictures of these digits, of one writer where the set
        names them."""
        g = self.glyphs[name]
        anyone = self._glyph_by_label[name]
        writer = g.writers[int(rng.integers(len(g.writers)))]
        out = []
        for k in labels:
            choices = anyone[k]
            if writer != UNKNOWN_WRITER:
                own = [i for i in choices if g.writers[i] == writer]
                choices = own or choices
            out.append(int(choices[int(rng.integers(len(choices)))]))
        return out


def ink_crop(image: np.ndarray) -> np.ndarray | None:
    """uint8 white-on-black ink cropped to its box, None when there is none."""
    ys, xs = np.nonzero(image > 20)
    if not len(ys):
        return None
    return np.ascontiguousarray(image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def sample_ink(sample: Sample) -> np.ndarray | None:
    """A picture sample's digit as cropped ink: scans through the reading path's own ink
    finder (paper, slivers of neighbouring cells), bitmaps with high ink as they are."""
    from digit_app.reading.pipeline import preprocess_single

    if sample.ink_high:
        return ink_crop(sample.image)
    stages = preprocess_single(sample.image)
    if stages is None:
        return None
    return ink_crop(np.where(stages.mask, stages.ink, 0).astype(np.uint8))


def glyphs_from_samples(samples: Sequence[Sample]) -> Glyphs:
    inks, labels, writers = [], [], []
    for s in samples:
        ink = sample_ink(s)
        if ink is None or min(ink.shape) < 2:
            continue
        inks.append(ink)
        labels.append(s.label)
        writers.append(s.writer)
    return Glyphs(inks, np.array(labels, np.int64), writers)


def glyphs_from_mnist(images: np.ndarray, labels: np.ndarray) -> Glyphs:
    inks, kept = [], []
    for i, img in enumerate(images):
        ink = ink_crop(img)
        if ink is not None:
            inks.append(ink)
            kept.append(int(labels[i]))
    return Glyphs(inks, np.array(kept, np.int64), [UNKNOWN_WRITER] * len(inks))


def pen_digits(samples: Sequence[Sample]) -> list[PenDigit]:
    out = []
    for s in samples:
        strokes = [np.asarray(x, np.float64) for x in s.strokes or () if len(x)]
        if strokes:
            out.append(PenDigit(s.label, s.writer, unit_strokes(strokes)))
    return out


def load_pools(cfg: object) -> tuple[Pool, Pool, dict[str, object]]:
    """(training pool, validation pool, the card's data section) from the train splits of every
    real set and MNIST's training images. Sets naming their writers give `val_writer_fraction`
    of them to validation; optdigits, mfeat and MNIST (no writer ids) only train."""
    from training.handwriting import TRAIN_SETS, load_sets, spec
    from training.mixing import split_by_writer, train_samples

    sets, missing = load_sets(TRAIN_SETS, cfg.handwriting_dir, cfg.allow_missing)
    train, val = Pool(), Pool()
    card: dict[str, object] = {"missing": missing}
    for name, data in sets.items():
        samples = train_samples(data)
        if cfg.limit and cfg.limit < len(samples):  # an even sample of the set, not its first digits
            keep = np.random.default_rng(cfg.seed).choice(len(samples), cfg.limit, replace=False)
            samples = [samples[i] for i in sorted(keep)]
        fit, held_out, held = split_by_writer(samples, cfg.val_writer_fraction, cfg.seed)
        if spec(name).kind == "pen":
            train.pen += pen_digits(fit)
            val.pen += pen_digits(held_out)
        else:
            train.glyphs[name] = glyphs_from_samples(fit)
            if held_out:
                val.glyphs[name] = glyphs_from_samples(held_out)
        s = spec(name)
        card[name] = {
            "files": data.files,
            "licence": s.licence,
            "citation": s.citation,
            "train_digits": len(fit),
            "train_writers": len({x.writer for x in fit if x.writer != UNKNOWN_WRITER}),
            "val_digits": len(held_out),
            "val_writers": sorted(held),
            "left_out_suspect": len(data.samples) - len(train_samples(data)),
        }
    images, labels, card["mnist"] = mnist_training_digits(cfg)
    train.glyphs["mnist"] = glyphs_from_mnist(images, labels)
    train.reindex()
    val.reindex()
    return train, val, card


def mnist_training_digits(cfg: object) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """MNIST's training images the served digit model trained on: its held-out split (its card's
    seed and fraction) stays out, so the benchmarks that read those digits read unseen ones for
    both readers, as for the one-digit checker. The test images are never used."""
    from digit_app import model_store
    from digit_app.config import get_settings
    from training.data import held_out_for_card, load_mnist

    mnist = load_mnist(cfg.data_dir, progress=False)
    settings = get_settings()
    try:
        version = model_store.latest_version(settings.model_dir)
        card = model_store.read_card(settings.model_dir, version)
    except model_store.ModelStoreError:
        version, card = None, {}
    fit, val, _ = held_out_for_card(card, mnist.y_train, len(mnist.x_test))
    if cfg.limit:
        fit = fit[: cfg.limit]
    info = {
        "files": mnist.sha256,
        "train_digits": int(len(fit)),
        "excluded": f"{len(val)} training images held out by digit model version {version} (its card's split)",
    }
    return mnist.x_train[fit], mnist.y_train[fit], info
