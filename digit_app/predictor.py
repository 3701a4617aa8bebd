"""One Predictor: load a model version from the store once, predict batches through its signature.

Used by the pages, the CLI, evaluation and tests alike. It calls the SavedModel's
`serving_default` signature (the same contract TensorFlow Serving exposes), never
per-image `model.predict`, and is safe to share between Streamlit sessions (threads).
When the store holds the version's float TensorFlow Lite twin and it gives the same
answers, the twin computes them instead: about ten times faster for one drawing.

Beside the digit model it loads the store's newest one-digit checker (segmentation asks it)
and pen model (`blend_pen`: a drawing's strokes give a second opinion), when there are ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digit_app.config import ONE_DIGIT_MODEL, PEN_MODEL, STRING_MODEL, get_settings
from digit_app.lite import Lite, checked_twin, probe_drawings, probe_images
from digit_app.model_store import (
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
PEN_INPUT = "strokes"
_MAX_BATCH = 1024


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
    # The pen model (`training.pen`) from the same store, when it has one.
    pen_version: int | None = None
    pen_card: dict = field(default_factory=dict)
    _pen_fn: object = field(default=None, repr=False)
    _pen_loaded: object = field(default=None, repr=False)
    # The string reader (`training.strings`) from the same store, when it has one: multi-digit
    # readings are read by it too, and `digit_app.decide` picks the answer.
    string_reader: object = field(default=None, repr=False)
    # The TensorFlow Lite twins of all three, when the store has ones that agree.
    _lite: Lite | None = field(default=None, repr=False)
    _checker_lite: Lite | None = field(default=None, repr=False)
    _pen_lite: Lite | None = field(default=None, repr=False)

    @property
    def runtime(self) -> str:
        """What computes the digit model's answers (for the CLI, logs and benchmarks)."""
        return "TensorFlow Lite" if self._lite is not None else "SavedModel"

    @property
    def temperature(self) -> float:
        """The temperature the version's probabilities are calibrated with (1.0: not calibrated)."""
        return card_temperature(self.card)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        version: int | None = None,
        unsure_threshold: float = 0.5,
        pen: bool = True,
        strings: bool = True,
    ) -> Predictor:
        """Load a version (the served one by default) and run one warm-up batch; `pen=False`
        and `strings=False` leave the pen model or the string reader out (to measure what
        each adds)."""
        import tensorflow as tf

        version = latest_version(model_dir) if version is None else version
        path = version_dir(model_dir, version)
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
        # `loaded` is kept alive with the function: it owns the variables the function reads.
        predictor = cls(Path(model_dir), version, unsure_threshold, read_card(model_dir, version), fn, loaded)
        predictor._load_checker(Path(model_dir).parent / ONE_DIGIT_MODEL)
        if pen:
            predictor._load_pen(Path(model_dir).parent / PEN_MODEL)
        if strings:
            predictor._load_string(Path(model_dir).parent / STRING_MODEL)
        if get_settings().use_tflite:
            predictor._lite = predictor._twin(Path(model_dir), version, fn, OUTPUT_NAME)
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
            self._checker_lite = self._twin(checker_dir, versions[-1], fn, CHECKER_OUTPUT)

    def _load_pen(self, pen_dir: Path) -> None:
        """Load the newest pen model; without one (or if it is broken) drawings are read from
        their pixels alone."""
        import tensorflow as tf

        versions = list_versions(pen_dir) if pen_dir.is_dir() else []
        if not versions:
            return
        try:
            loaded = tf.saved_model.load(str(version_dir(pen_dir, versions[-1])))
            fn = loaded.signatures["serving_default"]
            out = self._run(fn, OUTPUT_NAME, probe_drawings()[:2], 10, PEN_INPUT)
            if out.shape != (2, 10):
                raise ValueError(f"output {OUTPUT_NAME!r} has shape {out.shape[1:]}, expected (10,)")
            card = read_card(pen_dir, versions[-1])
            weight = float(card.get("blend_weight", 0.0))
            if not 0.0 <= weight < 1.0:
                raise ValueError(f"its card's blend_weight {weight} is not in [0, 1)")
        except Exception as exc:  # noqa: BLE001 - reading drawings must not depend on the pen model
            print(f"warning: pen model {pen_dir} not used: {exc!r}", flush=True)
            return
        self._pen_fn, self._pen_loaded = fn, loaded
        self.pen_version, self.pen_card = versions[-1], card
        if get_settings().use_tflite:
            self._pen_lite = self._twin(pen_dir, versions[-1], fn, OUTPUT_NAME, PEN_INPUT)

    def _load_string(self, string_dir: Path) -> None:
        """Load the newest string reader; without one (or if it is broken) numbers are read by
        segmentation alone."""
        from digit_app.string_reader import StringReader

        versions = list_versions(string_dir) if string_dir.is_dir() else []
        if not versions:
            return
        try:
            self.string_reader = StringReader.load(
                string_dir, versions[-1], self.unsure_threshold, lite=get_settings().use_tflite
            )
        except Exception as exc:  # noqa: BLE001 - reading numbers must not depend on it
            print(f"warning: string reader {string_dir} not used: {exc!r}", flush=True)

    def _twin(
        self, model_dir: Path, version: int, fn: object, output: str, input_name: str = INPUT_NAME
    ) -> Lite | None:
        """The version's Lite twin, if it answers as the SavedModel signature `fn` does."""
        probe = probe_drawings() if input_name == PEN_INPUT else probe_images()
        width = 1 if output == CHECKER_OUTPUT else 10
        return checked_twin(
            tflite_dir(model_dir, version), lambda x: self._run(fn, output, x, width, input_name), probe
        )

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

    @property
    def pen_weight(self) -> float:
        """How much the pen model's answer counts in a drawing's (its card's `blend_weight`)."""
        return float(self.pen_card.get("blend_weight", 0.0)) if self._pen_fn is not None else 0.0

    @property
    def has_pen(self) -> bool:
        return self.pen_weight > 0.0

    def pen_probabilities(self, drawings: np.ndarray) -> np.ndarray:
        """(N, 64, 5) encoded drawings (`digit_app.pen.encode`) -> (N, 10) the pen model's probabilities."""
        if self._pen_fn is None:
            raise ValueError("this predictor has no pen model")
        x = np.ascontiguousarray(drawings, np.float32)
        if self._pen_lite is None or not len(x):
            return self._run(self._pen_fn, OUTPUT_NAME, x, 10, PEN_INPUT)
        return self._pen_lite(x)

    def blend_pen(
        self, probabilities: np.ndarray, drawings: Sequence[Sequence[np.ndarray] | None]
    ) -> np.ndarray:
        """The digit model's (N, 10) probabilities, with each row whose strokes are given blended
        with the pen model's reading of them: p ~ p_image^(1-w) * p_pen^w (`digit_app.pen.blend`)."""
        from digit_app.pen import blend, encode_many

        out = np.array(probabilities, np.float64)
        if not self.has_pen:
            return out
        rows = [i for i, d in enumerate(drawings) if d]
        x, kept = encode_many([drawings[i] for i in rows])
        if not kept:
            return out
        rows = [rows[k] for k in kept]
        out[rows] = blend(out[rows], self.pen_probabilities(x).astype(np.float64), self.pen_weight)
        return out

    @staticmethod
    def _run(
        fn: object, output: str, inputs: np.ndarray, width: int, input_name: str = INPUT_NAME
    ) -> np.ndarray:
        """Call a SavedModel signature on a batch ((N,28,28[,1]) images by default) in parts of
        at most _MAX_BATCH."""
        import tensorflow as tf

        x = _as_batch(inputs) if input_name == INPUT_NAME else np.ascontiguousarray(inputs, np.float32)
        if len(x) == 0:
            return np.zeros((0, width), np.float32)
        out = []
        for start in range(0, len(x), _MAX_BATCH):
            batch = tf.constant(x[start : start + _MAX_BATCH])
            out.append(fn(**{input_name: batch})[output].numpy())
        return np.concatenate(out)

    def predict(self, images: np.ndarray) -> list[Prediction]:
        """Batch prediction with labels, confidences and the unsure flag."""
        probs = self.predict_probabilities(images)
        return [self._prediction(p) for p in probs]

    def _prediction(self, p: np.ndarray) -> Prediction:
        label = int(p.argmax())
        conf = float(p[label])
        return Prediction(label, conf, tuple(float(v) for v in p), conf < self.unsure_threshold)


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
