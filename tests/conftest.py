"""Shared fixtures. The real MNIST files come from MNIST_DIR or the repo's sibling shared/mnist."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.browser_support import in_ci

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The repo is cloned next to shared/ (<somewhere>/main and <somewhere>/shared).
_DEFAULT_MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "mnist"
_MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# Training runs of tests that are not about real handwriting learn from MNIST alone (faster).
MNIST_ONLY = {f"{name}_share": 0.0 for name in ("pendigits", "unipen", "scans", "optdigits", "mfeat")}
# A training run small enough for a smoke test (seconds), not for accuracy.
TINY = dict(epochs=1, limit=256, batch_size=64, width=8, dense_units=16, cache_renders=False)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding the four official MNIST files (gzipped or raw).

    Taken from MNIST_DIR, else ../shared/mnist next to the repo. Missing: the test is skipped
    on a developer machine, but fails under CI=true, where the data must be there.
    """
    value = os.environ.get("MNIST_DIR", "").strip()
    folder = (Path(value).expanduser() if value else _DEFAULT_MNIST_DIR).resolve()
    missing = [n for n in _MNIST_NAMES if not ((folder / f"{n}.gz").is_file() or (folder / n).is_file())]
    if missing:
        message = f"MNIST files not found in {folder} (missing: {', '.join(missing)}); set MNIST_DIR"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def podman():  # noqa: ANN201 - tests.container_support.Podman, imported lazily
    """podman with the tests' own store; fails under CI and skips elsewhere when it cannot run."""
    from tests.container_support import engine

    return engine()


@pytest.fixture(scope="session")
def app_image(podman):  # noqa: ANN001, ANN201
    """The app image, built once per session from the Dockerfile as it is (README's `docker build`).

    Its base is a stand-in made from Debian's packages (`tests/stand_ins.py`); the image test and
    the compose test share it.
    """
    from tests.container_support import build_app_image, dockerfile_bases
    from tests.stand_ins import debian_base, smoke_run, stand_in

    smoke_run(podman, debian_base(podman))
    for base in dockerfile_bases():
        stand_in(podman, base)
    return build_app_image(podman)


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest runs a page as `__main__` and leaves it there. A process started later with
    multiprocessing's spawn would re-run that page in the child (spawn imports the parent's
    `__main__`), and fail; each test gets back the `__main__` it started with."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
