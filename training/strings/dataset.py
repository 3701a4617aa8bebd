"""Many synthetic numbers at once, as the model's rows, and batches of them for training.

In: a `Pool`, how many strings, a seed. Out: `Rows` (each number's row as the app would feed
it to the string model, `digit_app.string_input.prepare`, and its label), then batches of
rows of similar width with CTC's dense labels.

Why: the pictures are made and read by the app's own ink finder in worker processes (numpy
and OpenCV hold the GIL), and batching rows of similar width wastes little work on padding.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from digit_app.string_input import HEIGHT, STRIDE, prepare
from training.strings.compose import KIND_WEIGHTS, make_string
from training.strings.sources import Pool

CHUNK = 250  # strings per task sent to a worker
# Batches are padded to a multiple of this width: fewer distinct shapes, each of which costs
# TensorFlow's CPU kernels a first, slow call (the first epoch took twice as long without).
BATCH_WIDTH_STEP = 32


@dataclass
class Rows:
    rows: list[np.ndarray] = field(default_factory=list)  # (HEIGHT, W) uint8 each
    labels: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    dropped: int = 0  # strings in which the ink finder found nothing

    def extend(self, other: Rows) -> None:
        self.rows += other.rows
        self.labels += other.labels
        self.kinds += other.kinds
        self.dropped += other.dropped

    def __len__(self) -> int:
        return len(self.rows)


_POOL: Pool | None = None
_WEIGHTS: tuple[float, ...] = KIND_WEIGHTS


def _init(pool: Pool, weights: tuple[float, ...]) -> None:
    global _POOL, _WEIGHTS
    _POOL, _WEIGHTS = pool, weights


def make_rows(pool: Pool, seed: int, n: int, weights: tuple[float, ...] = KIND_WEIGHTS) -> Rows:
    """n strings from one seed, read into rows."""
    rng = np.random.default_rng(seed)
    out = Rows()
    for _ in range(n):
        s = make_string(pool, rng, weights=weights)
        inp = prepare(s.gray)
        if inp is None:
            out.dropped += 1
            continue
        out.rows.append(np.round(inp.row * 255).astype(np.uint8))
        out.labels.append(s.label)
        out.kinds.append(s.kind)
    return out


def _task(args: tuple[int, int]) -> Rows:
    assert _POOL is not None
    return make_rows(_POOL, *args, weights=_WEIGHTS)


def generate(
    pool: Pool,
    n: int,
    seed: int,
    workers: int | None = None,
    desc: str = "strings",
    weights: tuple[float, ...] = KIND_WEIGHTS,
) -> Rows:
    """n strings (fewer by those without ink), the same for the same seed whatever the
    number of workers."""
    from tqdm import tqdm

    tasks = [(seed * 100_003 + i, min(CHUNK, n - start)) for i, start in enumerate(range(0, n, CHUNK))]
    out = Rows()
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=n, desc=desc, unit="string", mininterval=2, leave=False)
    if workers > 1 and len(tasks) > 1:
        # spawn, not fork: TensorFlow may have started threads; each worker gets the pool once.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(pool, weights)) as ex:
            for part, (_, k) in zip(ex.map(_task, tasks), tasks):
                out.extend(part)
                bar.update(k)
    else:
        for s, k in tasks:
            out.extend(make_rows(pool, s, k, weights))
            bar.update(k)
    bar.close()
    return out


def label_array(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CTC's dense labels (N, longest) padded with -1, and each label's length."""
    longest = max(1, max((len(s) for s in labels), default=1))
    dense = np.full((len(labels), longest), -1, np.int32)
    for i, s in enumerate(labels):
        dense[i, : len(s)] = [int(c) for c in s]
    return dense, np.array([len(s) for s in labels], np.int32)


def pad_rows(rows: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, HEIGHT, W, 1) float32 padded on the right with blank, and each row's frame count."""
    width = width or max(r.shape[1] for r in rows)
    x = np.zeros((len(rows), HEIGHT, width, 1), np.float32)
    for i, r in enumerate(rows):
        x[i, :, : r.shape[1], 0] = r / 255.0
    return x, np.array([r.shape[1] // STRIDE for r in rows], np.int32)


def batches(
    data: Rows, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of (rows, labels, label lengths, frames) batches, rows of similar width
    together, batches in random order. The frames include the padding: the model learns to
    call blank columns blank, which is what it meets past a row's end in a batch."""
    widths = np.array([r.shape[1] for r in data.rows])
    order = np.argsort(widths + rng.uniform(0, 8, len(widths)), kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for k in rng.permutation(len(groups)):
        idx = groups[k]
        widest = max(data.rows[i].shape[1] for i in idx)
        x, _ = pad_rows([data.rows[i] for i in idx], -(-widest // BATCH_WIDTH_STEP) * BATCH_WIDTH_STEP)
        y, lengths = label_array([data.labels[i] for i in idx])
        yield x, y, lengths, np.full(len(idx), x.shape[2] // STRIDE, np.int32)
