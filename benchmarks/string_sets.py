"""Synthetic numbers of other writers' digits: the held-out measure of the string reader.

In: the shared data folders. Out: numbers made by the training generator
(`training.strings.compose`) from digits no string model trains on: the dev writers of
pendigits (25-30), UNIPEN (31 writers, without the samples its curators found suspect) and the
scans (0006, 0007), optdigits' writer-independent file and MNIST's test images.

Why: the string model's validation numbers (checkpoint choice) come from train writers held out
of training; a figure on writers of the dev splits and on MNIST's test writers says how it reads
hands it has never met in any role. Measure only: nothing is tuned on these.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks.handwriting import handwriting_dir, mnist_dir
from training.handwriting import DEV, load_set
from training.strings.compose import KINDS, make_string
from training.strings.sources import Pool, glyphs_from_mnist, glyphs_from_samples, pen_digits


@lru_cache(maxsize=1)
def heldout_pool(root: Path | None = None) -> Pool:
    from training.data import load_mnist

    root = root or handwriting_dir()
    pool = Pool()
    for name in ("pendigits", "unipen"):
        pool.pen += pen_digits(
            [s for s in load_set(name, (DEV,), root, progress=False).samples if s.suspect is None]
        )
    for name in ("scans", "optdigits"):
        pool.glyphs[name] = glyphs_from_samples(load_set(name, (DEV,), root, progress=False).samples)
    m = load_mnist(data_dir=mnist_dir(), progress=False)
    pool.glyphs["mnist"] = glyphs_from_mnist(m.x_test, m.y_test)
    pool.reindex()
    return pool


def heldout_numbers(n: int, seed: int, kind: str) -> list[tuple[np.ndarray, str]]:
    """n numbers of one kind (pen, canvas or glyph), the same for the same seed."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    pool = heldout_pool()
    rng = np.random.default_rng(seed * 1000 + KINDS.index(kind))
    out = []
    for _ in range(n):
        s = make_string(pool, rng, kind=kind)
        out.append((s.gray, s.label))
    return out


@lru_cache(maxsize=1)
def pendigits_dev_pool(root: Path | None = None) -> Pool:
    pool = Pool()
    pool.pen += pen_digits(load_set("pendigits", (DEV,), root or handwriting_dir(), progress=False).samples)
    pool.reindex()
    return pool


def draw_page_numbers(n: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """n numbers of 3-6 digits written on the Draw page's canvas by pendigits' dev writers
    (25-30): each number one writer's strokes, in the generator's canvas style."""
    pool = pendigits_dev_pool()
    rng = np.random.default_rng(seed * 1000 + 99)
    out = []
    for _ in range(n):
        labels = [int(d) for d in rng.integers(0, 10, int(rng.integers(3, 7)))]
        s = make_string(pool, rng, kind="canvas", labels=labels)
        out.append((s.gray, s.label))
    return out
