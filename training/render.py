"""Real handwriting made into the model's input by the app's own code.

In: handwriting samples (`training.handwriting.Sample`): pen strokes or grey images. Out:
uint8 28x28 images, white ink on black, as the app feeds its model: strokes drawn on a canvas of
the Draw page's size and redrawn as that page redraws them (`digit_app.strokes`), images read
by the reading path (`preprocess_single`) as an uploaded cell is read.

Why: a model learns what it is shown, so training sees exactly what the app will see. And a
pen trajectory is more than one picture: the same drawing can be made bigger or smaller,
slanted, turned, drawn with a finer or bolder pen, or sampled more or less densely, so each
pen sample becomes several `copies` (the first is always the plain one, made as the Draw page
makes it). The last copy of each drawing is its canvas pixels with a bold pen, the way an
uploaded screenshot of a drawing looks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import digit_app
from digit_app.reading.pipeline import preprocess_single
from digit_app.strokes import pen_width, render_strokes
from training import handwriting
from training.fetch import atomic_write
from training.handwriting import Sample

CANVAS = 280  # px: the Draw page's canvas side (`digit_app.pages.draw.CANVAS_PX`)
PLAIN_HEIGHT = 0.6  # of the canvas: how tall the plain copy is drawn, a typical drawing on the page
HEIGHT_RANGE = (0.3, 0.85)  # of the canvas: people draw small and large digits
BOLD_PEN = 18  # px: the canvas's own brush in a screenshot (as `benchmarks.handwriting` draws it)
ROTATION_DEG = 10.0  # largest turn of a whole drawing: a 6 stays a 6
SHEAR = 0.3  # largest slant added or removed (x shift per unit of height)
WIDTH_SCALE = (0.8, 1.2)  # narrower or wider writing
PEN_SCALE = (0.7, 1.5)  # pen width relative to the one the Draw page redraws with
STEP = (0.005, 0.04)  # resampling: points every this share of the drawing's height
JITTER = 0.012  # largest hand tremor, share of the drawing's height (smoothed over 3 points)


@dataclass(frozen=True)
class Rendered:
    """Model inputs for a list of samples; samples the reading path found no digit in are dropped."""

    images: np.ndarray  # (N, copies, 28, 28) uint8; copy 0 is the plain one
    labels: np.ndarray  # (N,) uint8
    writers: list[str]
    dropped: int  # samples without a readable digit


def to_input(gray: np.ndarray) -> np.ndarray | None:
    """A picture read as one digit by the app's reading path, as uint8; None if none is found."""
    stages = preprocess_single(gray)
    if stages is None:
        return None
    return np.round(np.clip(stages.final, 0.0, 1.0) * 255).astype(np.uint8)


def on_paper(bitmap: np.ndarray) -> np.ndarray:
    """A bitmap whose ink is high and fills the frame (optdigits, mfeat), as a scan of it looks:
    dark ink on white paper with a margin. Read as it is, a digit touching every edge can pass
    for paper with a hole in it."""
    return np.pad(255 - bitmap, max(2, max(bitmap.shape) // 3), constant_values=255)


def fit_to_canvas(
    strokes: Sequence[np.ndarray], height: float, centre: tuple[float, float]
) -> list[np.ndarray]:
    """Strokes scaled to `height` canvas pixels (narrower than the canvas) around `centre`."""
    every = np.concatenate(strokes)
    lo, hi = every.min(axis=0), every.max(axis=0)
    size = np.maximum(hi - lo, 1e-6)
    scale = min(height / size[1] if size[1] > 0.05 * size[0] else math.inf, 0.9 * CANVAS / size[0])
    scale = min(scale, 0.9 * CANVAS / max(size))
    mid = (lo + hi) / 2
    return [(s - mid) * scale + np.asarray(centre) for s in strokes]


def _resampled(stroke: np.ndarray, step: float) -> np.ndarray:
    """Points every `step` along the stroke (its ends kept), as a slower or faster pen samples it."""
    if len(stroke) < 2:
        return stroke
    seg = np.hypot(*np.diff(stroke, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= step:
        return stroke
    at = np.append(np.arange(0.0, arc[-1], step), arc[-1])
    return np.stack([np.interp(at, arc, stroke[:, 0]), np.interp(at, arc, stroke[:, 1])], axis=1)


def varied(strokes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same drawing by a slightly different hand: turned, slanted, narrower or wider,
    resampled and trembling. Works in the drawing's own units."""
    every = np.concatenate(strokes)
    mid = (every.min(axis=0) + every.max(axis=0)) / 2
    height = max(float(np.ptp(every[:, 1])), float(np.ptp(every[:, 0])), 1e-6)
    t = math.radians(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    shape = np.array([[rng.uniform(*WIDTH_SCALE), rng.uniform(-SHEAR, SHEAR)], [0.0, 1.0]])
    matrix = rot @ shape
    step = rng.uniform(*STEP) * height
    jitter = rng.uniform(0.0, JITTER) * height
    out = []
    for s in strokes:
        pts = _resampled(np.asarray(s, np.float64), step)
        if jitter > 0 and len(pts) > 2:
            noise = rng.normal(0.0, jitter, pts.shape)
            noise[1:-1] = (noise[:-2] + noise[1:-1] + noise[2:]) / 3
            pts = pts + noise
        out.append((pts - mid) @ matrix.T + mid)
    return out


def pen_copies(strokes: Sequence[np.ndarray], copies: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`copies` canvas pictures of one drawing: the plain one, varied ones, and (last, with 3 or
    more copies) a bold-pen screenshot."""
    shape = (CANVAS, CANVAS)
    plain = fit_to_canvas(strokes, PLAIN_HEIGHT * CANVAS, (CANVAS / 2, CANVAS / 2))
    pictures = [render_strokes(plain, shape)]
    for k in range(1, copies):
        height = rng.uniform(*HEIGHT_RANGE) * CANVAS
        room = (CANVAS - height) / 2
        centre = (CANVAS / 2 + rng.uniform(-room, room) * 0.5, CANVAS / 2 + rng.uniform(-room, room) * 0.5)
        drawing = fit_to_canvas(varied(strokes, rng), height, centre)
        if k == copies - 1 and copies >= 3:
            pictures.append(render_strokes(drawing, shape, width=BOLD_PEN))
        else:
            pictures.append(
                render_strokes(drawing, shape, width=pen_width(drawing) * rng.uniform(*PEN_SCALE))
            )
    return pictures


def _one(args: tuple[Sample, int, int]) -> np.ndarray | None:
    """(copies, 28, 28) uint8 for one sample, or None when its plain copy holds no digit."""
    sample, copies, seed = args
    if sample.strokes is not None:
        strokes = [s for s in sample.strokes if len(s)]
        if not strokes:
            return None
        pictures = pen_copies(strokes, copies, np.random.default_rng(seed))
    else:
        pictures = [on_paper(sample.image) if sample.ink_high else sample.image]
    inputs = [to_input(p) for p in pictures]
    if inputs[0] is None:
        return None
    return np.stack([x if x is not None else inputs[0] for x in inputs])


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the code that turns samples into pictures (the app core and this module), so a
    cached rendering is used only by the code that made it."""
    app = Path(digit_app.__file__).resolve().parent
    files = sorted(p for p in app.rglob("*.py") if "pages" not in p.parts)
    files += [Path(__file__).resolve(), Path(handwriting.__file__).resolve()]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _cache_file(folder: Path, samples: Sequence[Sample], copies: int, seed: int) -> Path:
    h = hashlib.sha256(f"{copies}:{seed}:{code_version()}".encode())
    for s in samples:
        h.update(s.ident.encode() + b"\0")
    return folder / f"{h.hexdigest()[:32]}.npz"


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Worker processes started meanwhile use one BLAS thread each: with a process per core,
    BLAS's own threads only fight over the cores (several times slower on a busy machine)."""
    old = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = old


def render(
    samples: Sequence[Sample],
    copies: int = 1,
    seed: int = 0,
    workers: int | None = None,
    desc: str = "",
    cache: Path | None = None,
) -> Rendered:
    """Every sample as model input: pen samples in `copies` ways, images once (repeated to
    `copies`). Uses all cores; the same seed gives the same pictures. With `cache`, a folder,
    the result is kept there and read back by the next call with the same samples, settings
    and code."""
    path = _cache_file(cache, samples, copies, seed) if cache is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as f:
                return Rendered(f["images"], f["labels"], [str(w) for w in f["writers"]], int(f["dropped"]))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache file is made again
    rendered = _render(samples, copies, seed, workers, desc)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            images=rendered.images,
            labels=rendered.labels,
            writers=np.array(rendered.writers),
            dropped=rendered.dropped,
        )
        atomic_write(path, buffer.getvalue())
    return rendered


def _render(samples: Sequence[Sample], copies: int, seed: int, workers: int | None, desc: str) -> Rendered:
    from tqdm import tqdm

    jobs = [(s, copies, (seed * 1_000_003 + i) % 2**63) for i, s in enumerate(samples)]
    workers = workers or os.cpu_count() or 1
    bar = dict(total=len(jobs), desc=desc or "rendering", unit="digit", leave=False, mininterval=2)
    bar["disable"] = None  # no bar when the output is not a terminal (logs of training jobs)
    if workers > 1 and len(jobs) > 200:
        # spawn, not fork: the caller may have started TensorFlow's threads already
        with (
            _one_blas_thread(),
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
        ):
            results = list(tqdm(pool.map(_one, jobs, chunksize=64), **bar))
    else:
        results = [_one(j) for j in tqdm(jobs, **bar)]
    keep = [i for i, r in enumerate(results) if r is not None]
    images = np.zeros((len(keep), copies, 28, 28), np.uint8)
    for row, i in enumerate(keep):
        r = results[i]
        images[row] = r if len(r) == copies else np.repeat(r[:1], copies, axis=0)
    return Rendered(
        images=images,
        labels=np.array([samples[i].label for i in keep], np.uint8),
        writers=[samples[i].writer for i in keep],
        dropped=len(samples) - len(keep),
    )
