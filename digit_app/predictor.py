"""One Predictor: load a model version from the store once, predict batches through its signature.

Used by the pages, the CLI, evaluation and tests alike. It calls the SavedModel's
`serving_default` signature (the same contract TensorFlow Serving exposes), never
per-image `model.predict`, and is safe to share between Streamlit sessions (threads).
When the store holds the version's float TensorFlow Lite twin and it gives the same
answers, the twin computes them instead: about ten times faster for one drawing.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digit_app.config import ONE_DIGIT_MODEL, get_settings
from digit_app.model_store import (
    TFLITE_FLOAT,
    ModelStoreError,
    card_temperature,
    latest_version,
    list_versions,
    read_card,
    tflite_dir,
    version_dir,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
CHECKER_OUTPUT = "one_digit"
_MAX_BATCH = 1024
# The TensorFlow Lite twin reads batches in chunks of _LITE_CHUNK (uploads, benchmarks); a rest
# of up to _LITE_ONE_BY_ONE images (a drawing, its pieces) it reads one by one, which is faster
# than a padded chunk up to about half a chunk. Both on all cores: XNNPACK splits even one
# image's convolutions (2 cores, 2026-12-02: 0.17 ms an image against 0.34 ms on one core, and
# 0.16 ms in chunks of 256), so segmentation's many small batches go twice as fast.
_LITE_ONE_BY_ONE = 128
_LITE_CHUNK = 256
# The twin must give the SavedModel's probabilities to within this on a probe batch.
_LITE_TOLERANCE = 1e-4


def _exempt_from_cyclic_gc() -> None:
    """Move everything alive now (TensorFlow's large object graph) out of the cyclic GC's reach.

    Without this, each full collection walks hundreds of thousands of TensorFlow objects while
    holding the GIL: pauses of a few hundred ms that stalled the app server and made one drawing
    in six show its prediction 200-500 ms late (measured in headless Chromium; with the freeze,
    no tail). Reference counting still frees these objects; only cycles among them stay.
    """
    import gc

    gc.collect()
    gc.freeze()


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


class _Lite:
    """A version's float TensorFlow Lite twin: the same network run by XNNPACK.

    A SavedModel call costs a couple of milliseconds of TensorFlow overhead even for one
    image; the interpreter reads one in a fraction of a millisecond and big batches faster
    too (BENCHMARKS.md). An interpreter is not thread-safe: each has its own lock.
    """

    def __init__(self, model: bytes) -> None:
        cores = max(1, min(4, len(os.sched_getaffinity(0))))
        self._one = tflite_interpreter(model, threads=cores)
        self._many = tflite_interpreter(model, threads=cores)
        index = self._many.get_input_details()[0]["index"]
        self._many.resize_tensor_input(index, [_LITE_CHUNK, 28, 28, 1])
        self._many.allocate_tensors()
        # One lock per interpreter, taken per call: a drawing need not wait for a big batch.
        self._one_lock, self._many_lock = threading.Lock(), threading.Lock()
        # Tensor indices (the same in both interpreters; looked up once, not per call).
        self._in = self._one.get_input_details()[0]["index"]
        self._out = self._one.get_output_details()[0]["index"]

    def _invoke(self, interp: object, x: np.ndarray) -> np.ndarray:
        interp.set_tensor(self._in, x)
        interp.invoke()
        return interp.get_tensor(self._out).copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N,28,28,1) float32 -> (N,10) probabilities."""
        out = []
        start = 0
        while len(x) - start > _LITE_ONE_BY_ONE:
            chunk = x[start : start + _LITE_CHUNK]
            if len(chunk) < _LITE_CHUNK:
                pad = np.zeros((_LITE_CHUNK - len(chunk), 28, 28, 1), np.float32)
                chunk = np.concatenate([chunk, pad])
            with self._many_lock:
                out.append(self._invoke(self._many, chunk)[: len(x) - start])
            start += _LITE_CHUNK
        for i in range(start, len(x)):
            with self._one_lock:
                out.append(self._invoke(self._one, x[i : i + 1]))
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


@dataclass(frozen=True)
class Prediction:
    """One digit's result: the label, its probability, all ten, and whether to trust it."""

    label: int
    confidence: float
    probabilities: tuple[float, ...]
    unsure: bool

    @property
    def shown(self) -> str:
        """What the UI shows: the digit, or "?" when the model is unsure."""
        return "?" if self.unsure else str(self.label)


@dataclass
class Predictor:
    """A loaded model version; cheap to share, load it once per process."""

    model_dir: Path
    version: int
    unsure_threshold: float = 0.5
    card: dict = field(default_factory=dict)
    _fn: object = field(default=None, repr=False)
    _loaded: object = field(default=None, repr=False)
    # The one-digit checker (`training.one_digit`) from the same store, when it has one.
    checker_version: int | None = None
    checker_card: dict = field(default_factory=dict)
    _checker_fn: object = field(default=None, repr=False)
    _checker_loaded: object = field(default=None, repr=False)
    # The version's and the checker's TensorFlow Lite twins, when the store has ones that agree.
    _lite: _Lite | None = field(default=None, repr=False)
    _checker_lite: _Lite | None = field(default=None, repr=False)

    @property
    def runtime(self) -> str:
        """What computes the digit model's answers (for the CLI, logs and benchmarks)."""
        return "TensorFlow Lite" if self._lite is not None else "SavedModel"

    @property
    def temperature(self) -> float:
        """The temperature the version's probabilities are calibrated with (1.0: not calibrated)."""
        return card_temperature(self.card)

    @classmethod
    def load(cls, model_dir: Path, version: int | None = None, unsure_threshold: float = 0.5) -> Predictor:
        """Load a version (the served one by default) and run one warm-up batch."""
        import tensorflow as tf

        version = latest_version(model_dir) if version is None else version
        path = version_dir(model_dir, version)
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
        # `loaded` is kept alive with the function: it owns the variables the function reads.
        predictor = cls(Path(model_dir), version, unsure_threshold, read_card(model_dir, version), fn, loaded)
        predictor._load_checker(Path(model_dir).parent / ONE_DIGIT_MODEL)
        if get_settings().use_tflite:
            predictor._lite = _checked_twin(tflite_dir(Path(model_dir), version), fn, OUTPUT_NAME)
        predictor.predict_probabilities(np.zeros((1, 28, 28, 1), np.float32))
        _exempt_from_cyclic_gc()
        return predictor

    def _load_checker(self, checker_dir: Path) -> None:
        """Load the newest one-digit checker; without one (or if it is broken) segmentation
        goes by the digit model alone, as before the checker existed."""
        import tensorflow as tf

        versions = list_versions(checker_dir) if checker_dir.is_dir() else []
        if not versions:
            return
        try:
            loaded = tf.saved_model.load(str(version_dir(checker_dir, versions[-1])))
            fn = loaded.signatures["serving_default"]
            # The warm-up also checks the contract: one P(one digit) per image.
            out = self._run(fn, CHECKER_OUTPUT, np.zeros((2, 28, 28, 1), np.float32), 1)
            if out.shape != (2, 1):
                raise ValueError(f"output {CHECKER_OUTPUT!r} has shape {out.shape[1:]}, expected (1,)")
            card = read_card(checker_dir, versions[-1])
        except Exception as exc:  # noqa: BLE001 - reading digits must not depend on the checker
            print(f"warning: one-digit checker {checker_dir} not used: {exc!r}", flush=True)
            return
        self._checker_fn, self._checker_loaded = fn, loaded
        self.checker_version, self.checker_card = versions[-1], card
        if get_settings().use_tflite:
            self._checker_lite = _checked_twin(tflite_dir(checker_dir, versions[-1]), fn, CHECKER_OUTPUT)

    @property
    def has_checker(self) -> bool:
        return self._checker_fn is not None

    def predict_probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N,28,28[,1]) float in 0..1, white ink on black -> (N,10) probabilities."""
        return self._digit_model(images)

    def _digit_model(self, images: np.ndarray) -> np.ndarray:
        """The network's probabilities, from the Lite twin when there is one."""
        if self._lite is None:
            return self._run(self._fn, OUTPUT_NAME, images, 10)
        x = _as_batch(images)
        return self._lite(x) if len(x) else np.zeros((0, 10), np.float32)

    def one_digit_probability(self, images: np.ndarray) -> np.ndarray:
        """(N,28,28[,1]) -> (N,) P(the piece is one digit, not two touching digits or a part of one)."""
        if self._checker_fn is None:
            raise ValueError("this predictor has no one-digit checker")
        if self._checker_lite is None:
            return self._run(self._checker_fn, CHECKER_OUTPUT, images, 1)[:, 0]
        x = _as_batch(images)
        return self._checker_lite(x)[:, 0] if len(x) else np.zeros(0, np.float32)

    @staticmethod
    def _run(fn: object, output: str, images: np.ndarray, width: int) -> np.ndarray:
        """Call a SavedModel signature on (N,28,28[,1]) images in batches of at most _MAX_BATCH."""
        import tensorflow as tf

        x = _as_batch(images)
        if len(x) == 0:
            return np.zeros((0, width), np.float32)
        out = []
        for start in range(0, len(x), _MAX_BATCH):
            batch = tf.constant(x[start : start + _MAX_BATCH])
            out.append(fn(**{INPUT_NAME: batch})[output].numpy())
        return np.concatenate(out)

    def predict(self, images: np.ndarray) -> list[Prediction]:
        """Batch prediction with labels, confidences and the unsure flag."""
        probs = self.predict_probabilities(images)
        return [self._prediction(p) for p in probs]

    def _prediction(self, p: np.ndarray) -> Prediction:
        label = int(p.argmax())
        conf = float(p[label])
        return Prediction(label, conf, tuple(float(v) for v in p), conf < self.unsure_threshold)


def _checked_twin(twin_dir: Path, fn: object, output: str) -> _Lite | None:
    """The float TensorFlow Lite twin in `twin_dir` when there is one and it answers as the
    SavedModel signature `fn` does on a probe batch (a twin left from another model is refused,
    with a warning); else None, and the SavedModel answers."""
    path = twin_dir / TFLITE_FLOAT
    if not path.is_file():
        return None
    try:
        lite = _Lite(path.read_bytes())
        probe = _probe_images()
        want = Predictor._run(fn, output, probe, 1)
        for got in (lite(probe[:2]), lite(probe)):  # both ways it reads a batch
            if got.shape[1:] != want.shape[1:]:
                raise ValueError(f"it answers shape {got.shape[1:]}, the SavedModel {want.shape[1:]}")
            diff = float(np.abs(got - want[: len(got)]).max())
            if diff > _LITE_TOLERANCE:
                raise ValueError(f"its answers differ from the SavedModel's by {diff:.2g}")
    except Exception as exc:  # noqa: BLE001 - the SavedModel always works
        print(f"warning: TensorFlow Lite twin {path} not used: {exc}", flush=True)
        return None
    return lite


def _probe_images() -> np.ndarray:
    """Images the twin must read as the SavedModel does: printed digits, blends of two (which
    the model is unsure of, so its probabilities are far from 0 and 1 and any other network
    shows), noise and a blank, past _LITE_ONE_BY_ONE of them so both ways of reading are used."""
    printed = np.zeros((10, 28, 28), np.uint8)
    for d in range(10):
        cv2.putText(printed[d], str(d), (7, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.75, 255, 2, cv2.LINE_AA)
    digits = printed.astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 10, (90, 2))
    blends = 0.5 * (digits[pairs[:, 0]] + digits[pairs[:, 1]])
    noise = rng.random((_LITE_ONE_BY_ONE + 1 - 101, 28, 28), dtype=np.float32)
    return np.concatenate([np.zeros((1, 28, 28), np.float32), digits, blends, noise])[..., None]


def _as_batch(images: np.ndarray) -> np.ndarray:
    """(N,28,28[,1]) -> contiguous float32 (N,28,28,1), or a clear error."""
    x = np.ascontiguousarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise ValueError(f"expected images of shape (N, 28, 28, 1), got {x.shape}")
    return x


_served_lock = threading.Lock()
_served: dict[Path, Predictor] = {}
_broken: set[tuple[Path, int]] = set()  # versions that failed to load are not retried on every call


def broken_versions(model_dir: Path | None = None) -> list[int]:
    """Versions this process could not load (and so skipped), for the pages to report."""
    model_dir = Path(model_dir or get_settings().model_dir)
    return sorted(v for d, v in _broken if d == model_dir)


def served_predictor(model_dir: Path | None = None) -> Predictor:
    """The predictor of the served (highest) version, shared by all sessions of this process.

    Checks the store on every call (a directory listing) and loads a newer version when one
    is published, so the app switches versions without a restart. If the newest version
    cannot be loaded (half-copied, corrupt), the last version that loads is served instead.
    """
    settings = get_settings()
    model_dir = Path(model_dir or settings.model_dir)
    versions = [v for v in list_versions(model_dir) if (model_dir, v) not in _broken]
    if not versions:
        raise ModelStoreError(f"no model version in {model_dir}; train one with `python -m training.train`")
    current = _served.get(model_dir)
    if current is not None and current.version == versions[-1]:
        return current
    with _served_lock:
        current = _served.get(model_dir)
        if current is not None and current.version == versions[-1]:
            return current
        errors = []
        for version in reversed(versions):
            if current is not None and version == current.version:
                return current
            try:
                predictor = Predictor.load(model_dir, version, settings.unsure_threshold)
            except Exception as exc:  # noqa: BLE001 - any broken version falls back to an older one
                errors.append(f"version {version}: {exc}")
                _broken.add((model_dir, version))
                continue
            _served[model_dir] = predictor
            return predictor
        raise ModelStoreError("no loadable model version: " + "; ".join(errors))
