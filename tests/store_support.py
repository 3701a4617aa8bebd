"""The repo's served model version, for tests that copy it into a temporary store.

Tests never write into the repo's own store: they copy the served version (its SavedModel,
card and extras) into a temporary one, numbered as the test needs. The served version is the
highest in `model_store/mnist_cnn`; older ones live in git history only (BENCHMARKS.md names
the commits).
"""

from __future__ import annotations

from digit_app.config import PROJECT_ROOT
from digit_app.model_store import latest_version

REPO_MODEL_DIR = PROJECT_ROOT / "model_store" / "mnist_cnn"
SERVED_VERSION = REPO_MODEL_DIR / str(latest_version(REPO_MODEL_DIR))
