"""TensorFlow Lite twins: a model version's network run by XNNPACK instead of TensorFlow.

In: a twin's `.tflite` bytes and the SavedModel signature it must agree with. Out: a callable
(N, *shape) float32 -> (N, K) answers, or None (with a warning) when the twin is missing or
answers differently, so the SavedModel answers instead.

Why: a SavedModel call costs a couple of milliseconds of TensorFlow overhead even for one
image; the interpreter reads one in a fraction of a millisecond and big batches faster too
(BENCHMARKS.md). Every model in the store (digit model, one-digit checker, pen model) gets one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digit_app.model_store import TFLITE_FLOAT

# A twin reads batches in chunks of _LITE_CHUNK (uploads, benchmarks); a rest of up to
# _LITE_ONE_BY_ONE inputs (a drawing, its pieces) it reads one by one, which is faster than a
# padded chunk up to about half a chunk. Both on all cores: XNNPACK splits even one image's
# convolutions (2 cores, 2026-12-02: 0.17 ms an image against 0.34 ms on one core, and 0.16 ms
# in chunks of 256), so segmentation's many small batches go twice as fast.
_LITE_ONE_BY_ONE = 128
_LITE_CHUNK = 256
# A twin must give the SavedModel's answers to within this on a probe batch.
_LITE_TOLERANCE = 1e-4


def tflite_interpreter(model: bytes, threads: int = 1) -> object:
    """LiteRT's interpreter when installed (what devices run), else TensorFlow's copy of it."""
    import warnings

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated"
        interp = Interpreter(model_content=model, num_threads=threads)
    interp.allocate_tensors()
    return interp


class Lite:
    """One twin: two interpreters (one input at a time, and chunks), each with its own lock,
    because an interpreter is not thread-safe and a drawing need not wait for a big batch."""

    def __init__(self, model: bytes) -> None:
        cores = max(1, min(4, len(os.sched_getaffinity(0))))
        self._one = tflite_interpreter(model, threads=cores)
        self._many = tflite_interpreter(model, threads=cores)
        details = self._many.get_input_details()[0]
        self.shape = tuple(int(v) for v in details["shape"][1:])  # one input's shape
        self._many.resize_tensor_input(details["index"], [_LITE_CHUNK, *self.shape])
        self._many.allocate_tensors()
        self._one_lock, self._many_lock = threading.Lock(), threading.Lock()
        # Tensor indices (the same in both interpreters; looked up once, not per call).
        self._in = self._one.get_input_details()[0]["index"]
        self._out = self._one.get_output_details()[0]["index"]
        self.width = int(self._one.get_output_details()[0]["shape"][-1])

    def _invoke(self, interp: object, x: np.ndarray) -> np.ndarray:
        interp.set_tensor(self._in, x)
        interp.invoke()
        return interp.get_tensor(self._out).copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, *shape) float32 -> (N, K)."""
        out = []
        start = 0
        while len(x) - start > _LITE_ONE_BY_ONE:
            chunk = x[start : start + _LITE_CHUNK]
            if len(chunk) < _LITE_CHUNK:
                chunk = np.concatenate([chunk, np.zeros((_LITE_CHUNK - len(chunk), *self.shape), np.float32)])
            with self._many_lock:
                out.append(self._invoke(self._many, chunk)[: len(x) - start])
            start += _LITE_CHUNK
        for i in range(start, len(x)):
            with self._one_lock:
                out.append(self._invoke(self._one, x[i : i + 1]))
        return np.concatenate(out) if out else np.zeros((0, self.width), np.float32)


class LiteRows:
    """The string reader's twin: converted for batch 1 and any width, it reads a batch of
    (N, H, W, 1) rows one row at a time, resized to the batch's width when that changes."""

    def __init__(self, model: bytes) -> None:
        cores = max(1, min(4, len(os.sched_getaffinity(0))))
        self._interp = tflite_interpreter(model, threads=cores)
        details = self._interp.get_input_details()[0]
        self._in, self._height = details["index"], int(details["shape"][1])
        self._out = self._interp.get_output_details()[0]["index"]
        self._width = -1
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """(N, H, W, 1) float32 -> (N, frames, classes)."""
        out = []
        with self._lock:
            if rows.shape[2] != self._width:
                self._interp.resize_tensor_input(self._in, [1, self._height, rows.shape[2], 1])
                self._interp.allocate_tensors()
                self._width = rows.shape[2]
            for r in rows:
                self._interp.set_tensor(self._in, r[None])
                self._interp.invoke()
                out.append(self._interp.get_tensor(self._out)[0].copy())
        return np.stack(out)


def checked_twin(
    twin_dir: Path,
    saved_model: Callable[[np.ndarray], np.ndarray],
    probe: np.ndarray,
    runner: type[Lite] | type[LiteRows] = Lite,
) -> Lite | LiteRows | None:
    """The float twin in `twin_dir` when there is one and it answers as `saved_model` (the
    SavedModel's signature, wrapped) does on `probe`, both ways it reads a batch (a twin left
    from another model is refused, with a warning); else None, and the SavedModel answers.
    `runner`: `LiteRows` for the string reader's rows of any width."""
    path = twin_dir / TFLITE_FLOAT
    if not path.is_file():
        return None
    try:
        lite = runner(path.read_bytes())
        if isinstance(lite, Lite) and lite.shape != probe.shape[1:]:
            raise ValueError(f"it reads inputs of shape {lite.shape}, the SavedModel {probe.shape[1:]}")
        want = saved_model(probe)
        for got in (lite(probe[:2]), lite(probe)):
            if got.shape[1:] != want.shape[1:]:
                raise ValueError(f"it answers shape {got.shape[1:]}, the SavedModel {want.shape[1:]}")
            diff = float(np.abs(got - want[: len(got)]).max())
            if diff > _LITE_TOLERANCE:
                raise ValueError(f"its answers differ from the SavedModel's by {diff:.2g}")
    except Exception as exc:  # noqa: BLE001 - the SavedModel always works
        print(f"warning: TensorFlow Lite twin {path} not used: {exc}", flush=True)
        return None
    return lite


def probe_images() -> np.ndarray:
    """Images a twin must read as the SavedModel does: printed digits, blends of two (which
    the model is unsure of, so its probabilities are far from 0 and 1 and any other network
    shows), noise and a blank, past _LITE_ONE_BY_ONE of them so both ways of reading are used."""
    import cv2

    printed = np.zeros((10, 28, 28), np.uint8)
    for d in range(10):
        cv2.putText(printed[d], str(d), (7, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.75, 255, 2, cv2.LINE_AA)
    digits = printed.astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 10, (90, 2))
    blends = 0.5 * (digits[pairs[:, 0]] + digits[pairs[:, 1]])
    noise = rng.random((_LITE_ONE_BY_ONE + 1 - 101, 28, 28), dtype=np.float32)
    return np.concatenate([np.zeros((1, 28, 28), np.float32), digits, blends, noise])[..., None]


def probe_drawings() -> np.ndarray:
    """Pen-model inputs a twin must read as the SavedModel does: random walks of the pen."""
    from digit_app.pen import encode

    rng = np.random.default_rng(0)
    walks = [
        [np.cumsum(rng.normal(0, 1, (int(rng.integers(2, 40)), 2)), axis=0)]
        for _ in range(_LITE_ONE_BY_ONE + 1)
    ]
    return np.stack([encode(w) for w in walks])
