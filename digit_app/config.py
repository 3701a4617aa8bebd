"""Every path and setting in one place.

Paths are built from the package location, never from the working directory, and each can
be overridden by an environment variable so that tests, Docker and CI can point the app at
other folders without touching code. The retraining job's settings (`RetrainConfig`) are here
too: the app starts jobs with them and the trainer runs with them, and the app core never
imports the trainer.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    """Read a path from the environment, falling back to a project-relative default."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _default_cache_dir() -> Path:
    """The per-user cache (XDG on Linux), where downloaded MNIST files are kept."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "digit-app"


# The one-digit checker: a second model in the same store (<model_store>/one_digit/<version>/),
# read by segmentation to tell one digit from two touching digits or a piece of one.
ONE_DIGIT_MODEL = "one_digit"
# The pen model: reads a drawing's strokes (`training.pen`), blended with the digit model's answer
# for drawings (<model_store>/pen_digit/<version>/).
PEN_MODEL = "pen_digit"
# The string reader: a model that reads a whole row of digits at once (CTC), in the same store
# (<model_store>/digit_string/<version>/), read beside segmentation for every number.
STRING_MODEL = "digit_string"


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build a fresh one with `get_settings()` after changing the env."""

    # Folder TensorFlow Serving reads: <model_store>/<model_name>/<version>/saved_model.pb
    model_store: Path = field(
        default_factory=lambda: _env_path("DIGIT_APP_MODEL_STORE", PROJECT_ROOT / "model_store")
    )
    # Name of the served model (the sub-folder of the model store).
    model_name: str = field(default_factory=lambda: os.environ.get("DIGIT_APP_MODEL_NAME", "mnist_cnn"))
    # Explicit MNIST folder (tests and CI point this at ../shared/mnist); None = cache/download.
    mnist_dir: Path | None = field(
        default_factory=lambda: (
            _env_path("MNIST_DIR", Path()) if os.environ.get("MNIST_DIR", "").strip() else None
        )
    )
    # Folder holding the real-handwriting sets (training looks here first, then in the cache).
    handwriting_dir: Path | None = field(
        default_factory=lambda: (
            _env_path("HANDWRITING_DIR", Path()) if os.environ.get("HANDWRITING_DIR", "").strip() else None
        )
    )
    # Where downloaded data sets are cached.
    cache_dir: Path = field(default_factory=lambda: _env_path("DIGIT_APP_CACHE_DIR", _default_cache_dir()))
    # Runtime state (database, job logs); git-ignored and a Docker volume.
    data_dir: Path = field(default_factory=lambda: _env_path("DIGIT_APP_DATA_DIR", PROJECT_ROOT / "data"))
    # Predictions below this confidence are shown as "unsure" (?).
    unsure_threshold: float = field(default_factory=lambda: _env_float("DIGIT_APP_UNSURE_THRESHOLD", 0.5))
    # Run the served version through its TensorFlow Lite twin when the store has one
    # (`<model_store>/<model_name>-tflite/<N>/model_float.tflite`, written when a version is
    # published, or by `python -m training.export_tflite`): the same network, about ten times
    # faster per drawing.
    use_tflite: bool = field(
        default_factory=lambda: (
            os.environ.get("DIGIT_APP_TFLITE", "1").strip().lower() not in {"0", "false", "no", "off"}
        )
    )
    # Largest upload accepted, in bytes, and largest decoded image, in pixels.
    max_upload_bytes: int = field(default_factory=lambda: _env_int("DIGIT_APP_MAX_UPLOAD_BYTES", 20 * 2**20))
    max_image_pixels: int = field(default_factory=lambda: _env_int("DIGIT_APP_MAX_IMAGE_PIXELS", 40_000_000))

    # Feedback database (SQLAlchemy URL); SQLite file under data_dir unless set (e.g. PostgreSQL).
    database_url: str = field(default_factory=lambda: os.environ.get("DIGIT_APP_DATABASE_URL", "").strip())
    # Admin actions (retrain, cancel, rollback, relabel/delete corrections) are refused when
    # this is set and no admin password is configured (the Docker image sets it).
    require_admin: bool = field(
        default_factory=lambda: (
            os.environ.get("DIGIT_APP_REQUIRE_ADMIN", "").strip().lower() in {"1", "true", "yes", "on"}
        )
    )
    # Extra retraining settings as JSON (e.g. '{"epochs": 1}' for a quick demo or a test).
    retrain_overrides: str = field(default_factory=lambda: os.environ.get("DIGIT_APP_RETRAIN_CONFIG", ""))
    # Start a retraining by itself once this many new corrections that are not suspect were saved
    # since the served version (0 = never, the default; `digit_app.autoretrain`) ...
    auto_retrain_after: int = field(default_factory=lambda: _env_int("DIGIT_APP_AUTO_RETRAIN_AFTER", 0))
    # ... and never sooner than this many seconds after the last retraining started.
    auto_retrain_interval_s: float = field(
        default_factory=lambda: _env_float("DIGIT_APP_AUTO_RETRAIN_INTERVAL", 3600.0)
    )
    # How long a write waits for a locked SQLite database before giving up with a message.
    db_busy_ms: int = field(default_factory=lambda: _env_int("DIGIT_APP_DB_BUSY_MS", 10_000))
    # A running job whose heartbeat is older than this is considered dead.
    job_stale_seconds: float = field(default_factory=lambda: _env_float("DIGIT_APP_JOB_STALE_SECONDS", 120.0))

    @property
    def database(self) -> str:
        """The feedback database URL actually used."""
        return self.database_url or f"sqlite:///{self.data_dir / 'feedback.sqlite3'}"

    @property
    def model_dir(self) -> Path:
        """The folder holding the numbered versions of the served model."""
        return self.model_store / self.model_name

    @property
    def string_model_dir(self) -> Path:
        """The folder holding the numbered versions of the string reader."""
        return self.model_store / STRING_MODEL

    @property
    def one_digit_dir(self) -> Path:
        """The folder holding the numbered versions of the one-digit checker."""
        return self.model_store / ONE_DIGIT_MODEL

    @property
    def pen_dir(self) -> Path:
        """The folder holding the numbered versions of the pen model."""
        return self.model_store / PEN_MODEL


def get_settings() -> Settings:
    """Settings as the environment says now (cheap; call it where needed, do not cache)."""
    return Settings()


# --- the retraining job's settings -----------------------------------------------------------
# Read by both sides: the app (`admin.start_retrain`) resolves them into the job's row, and
# the job (`python -m training.retrain --job N`) runs with them; each field is also a flag of
# `training.retrain`.


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field whose help text becomes the --flag's help."""
    return field(default=default, metadata={"help": help})


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config as JSON-ready values (paths as strings), for cards and job records."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}


@dataclass
class RetrainConfig:
    """Fine-tuning the served model on users' feedback, and the gate a candidate must pass."""

    epochs: int = option(8, "Passes of the dense head over the mix of feedback and replayed images.")
    replay: int = option(
        16000, "Images replayed each epoch (MNIST and real handwriting), so nothing learned is forgotten."
    )
    real_replay: int = option(
        6000,
        "Of those, real handwriting: train-split digits of the sets on this machine (never downloaded"
        " by a retraining), so a correction is learned beside real writers' digits (0 = MNIST only).",
    )
    feedback_share: float = option(
        0.25, "Share of each epoch taken by feedback samples (oversampled when there are few)."
    )
    neighbours: int = option(
        4,
        "Replayed images nearest each correction (in the served model's features) replayed as"
        " often as the correction, so the boundary moves only between them (0 = off).",
    )
    augment: float = option(
        0.5,
        "Scale of the mild random rotation, shift, zoom, shear and warp of the feedback's copies (0 = none).",
    )
    feedback_copies: int = option(
        8, "Ways each feedback image is learned: as stored, and varied copies (the rest, `augment`)."
    )
    optimizer: str = option("adamw", "adamw or sgd (momentum 0.9).")
    learning_rate: float = option(1e-3, "Starting learning rate (cosine decay to 0).")
    distill: float = option(
        0.5, "Weight of the served model's own answers in the replayed images' targets (less forgetting)."
    )
    freeze_batchnorm: bool = option(
        False, "Keep batch-norm statistics and scales as trained on MNIST (less forgetting)."
    )
    batch_size: int = option(128, "Images per gradient step.")
    seed: int = option(0, "Seed for the replay sample, shuffling and augmentation.")
    base_version: int | None = option(None, "Version to fine-tune (default: the served, highest one).")
    max_mnist_drop: float = option(
        0.001, "Gate: largest allowed drop in MNIST test accuracy (0.001 = 0.1 point)."
    )
    max_class_drop: float = option(
        0.01, "Gate: largest allowed drop in any one digit's MNIST test recall (catches poisoned labels)."
    )
    min_feedback_accuracy: float = option(
        0.95, "Gate: share of the stored feedback the candidate must get right."
    )
    hold_out_suspects: bool = option(
        True,
        "Leave out corrections whose label is likely wrong (`digit_app.suspicion`) unless an admin"
        " accepted them; rejected ones are never learned from either way.",
    )
    suspect_threshold: float = option(
        0.95,
        "Suspicion score (0..1) from which a correction is held out: the lowest that flags at most 10%"
        " of honest corrections on version 7's validation writers (`benchmarks.suspects --tune`).",
    )
    suspect_string_reader: bool = option(
        True,
        "Ask the store's string reader about each stored label too (a network trained on other data,"
        " so its mistakes differ from the served model's); without one, the model and neighbours decide.",
    )
    max_suspect_share: float = option(
        0.5,
        "When more of the stored labels than this are held out as suspect, nothing is learned: a batch"
        " that is mostly wrong is an attack or a mistake, and what slipped past the check would be learned.",
    )
    suspect_neighbours: int = option(
        8, "Nearest training digits (in the served model's features) asked about each stored label."
    )
    test_limit: int | None = option(None, "Evaluate the gate on only this many MNIST test images (tests).")
    data_dir: Path | None = option(
        None, "Folder with the MNIST IDX files (default: $MNIST_DIR, cache, download)."
    )
    handwriting_dir: Path | None = option(
        None, "Folder with the real-handwriting sets (default: $HANDWRITING_DIR, then the user cache)."
    )
    out: Path | None = option(None, "Model folder to fine-tune and publish into (default: the served model).")

    to_dict = as_dict

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetrainConfig:
        """Known fields only; paths restored; unknown keys are an error (a typo must not pass silently)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown retraining settings: {', '.join(sorted(unknown))}")
        kw = dict(values)
        for key in ("data_dir", "handwriting_dir", "out"):
            if kw.get(key):
                kw[key] = Path(kw[key])
        return cls(**kw)

    def resolved_out(self) -> Path:
        """The model folder to fine-tune and publish into."""
        return Path(self.out) if self.out else get_settings().model_dir


def retrain_config_dict(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The retraining config a job runs with: defaults, then $DIGIT_APP_RETRAIN_CONFIG, then overrides."""
    settings = get_settings()
    values: dict[str, Any] = {}
    if settings.retrain_overrides:
        values.update(json.loads(settings.retrain_overrides))
    values.update(overrides or {})
    if settings.mnist_dir and not values.get("data_dir"):
        values["data_dir"] = str(settings.mnist_dir)
    if settings.handwriting_dir and not values.get("handwriting_dir"):
        values["handwriting_dir"] = str(settings.handwriting_dir)
    return RetrainConfig.from_dict(values).to_dict()
