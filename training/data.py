"""MNIST loading with checksum verification, mirror download and a stratified split.

The four official IDX files are looked up in this order: an explicit folder (`--data-dir`
or `MNIST_DIR`), the user cache, then a list of public mirrors. Every file is verified
against the SHA-256 of its decompressed contents, so any copy (gzipped or raw, from any
mirror) is accepted only if it is byte-identical to the official one.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_app.config import get_settings
from training.fetch import DataError, sha256
from training.fetch import download as fetch_verified

# Official file name -> SHA-256 of its decompressed contents.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Public mirrors serving `<name>.gz`, tried in turn.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# IDX type code -> numpy dtype (big-endian, as the format stores it).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Mnist:
    """The MNIST arrays (uint8 images 28x28, uint8 labels) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: dict[str, str]


def parse_idx(raw: bytes, name: str = "data") -> np.ndarray:
    """Decode an IDX byte string; errors name the file so the user knows which one is bad."""
    if len(raw) < 4:
        raise DataError(f"{name}: truncated (only {len(raw)} bytes, no IDX header)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{name}: wrong magic number 0x{raw[:4].hex()} (not an IDX file)")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{name}: truncated header ({len(raw)} bytes, {header_len} expected)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{name}: {kind} ({len(raw)} bytes, {expected} expected for shape {shape})")
    return np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))


def read_maybe_gzip(path: Path) -> bytes:
    """Read a file, decompressing it when it is gzipped (detected by its magic bytes)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: truncated or corrupt gzip ({exc})") from exc
    return data


def _verified(raw: bytes, name: str, where: str) -> bytes:
    """Return raw if it is the official file, else raise naming the file and where it was."""
    digest = sha256(raw)
    if digest != MNIST_FILES[name]:
        raise DataError(
            f"{where}: wrong SHA-256 {digest[:12]}… for {name} (expected {MNIST_FILES[name][:12]}…)"
        )
    return raw


def _find_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def download(name: str, cache_dir: Path, mirrors: Sequence[str], progress: bool = True) -> Path:
    """Fetch `<name>.gz` from the first mirror that serves the official file; cache it atomically."""

    def check(payload: bytes, url: str) -> bytes:
        raw = gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload
        _verified(raw, name, url)
        return payload if payload[:2] == b"\x1f\x8b" else gzip.compress(raw)

    urls = [mirror.rstrip("/") + f"/{name}.gz" for mirror in mirrors]
    return fetch_verified(name, urls, cache_dir / f"{name}.gz", check, progress)


def locate(
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    mirrors: Sequence[str] = MIRRORS,
    progress: bool = True,
) -> dict[str, Path]:
    """Find (or download) the four files; an explicit folder must hold all of them."""
    settings = get_settings()
    data_dir = data_dir if data_dir is not None else settings.mnist_dir
    cache_dir = cache_dir if cache_dir is not None else settings.cache_dir / "mnist"
    found: dict[str, Path] = {}
    for name in MNIST_FILES:
        if data_dir is not None:
            path = _find_in(Path(data_dir), name)
            if path is None:
                raise DataError(f"{name}: missing from {data_dir} (expected {name}.gz or {name})")
        else:
            path = _find_in(cache_dir, name) or download(name, cache_dir, mirrors, progress)
        found[name] = path
    return found


def _load_verified(path: Path, name: str, from_cache: bool) -> np.ndarray:
    try:
        raw = read_maybe_gzip(path)
        _verified(raw, name, str(path))
    except DataError:
        if from_cache:  # a corrupt cached copy is dropped so the next run downloads it again
            path.unlink(missing_ok=True)
        raise
    return parse_idx(raw, str(path))


def load_mnist(
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    mirrors: Sequence[str] = MIRRORS,
    progress: bool = True,
) -> Mnist:
    """The verified 60k/10k MNIST arrays."""
    settings = get_settings()
    explicit = data_dir if data_dir is not None else settings.mnist_dir
    paths = locate(data_dir, cache_dir, mirrors, progress)
    arrays = {name: _load_verified(p, name, explicit is None) for name, p in paths.items()}
    mnist = Mnist(
        x_train=arrays["train-images-idx3-ubyte"].astype(np.uint8),
        y_train=arrays["train-labels-idx1-ubyte"].astype(np.uint8),
        x_test=arrays["t10k-images-idx3-ubyte"].astype(np.uint8),
        y_test=arrays["t10k-labels-idx1-ubyte"].astype(np.uint8),
        source=str(Path(next(iter(paths.values()))).parent),
        sha256=dict(MNIST_FILES),
    )
    if len(mnist.x_train) != len(mnist.y_train) or len(mnist.x_test) != len(mnist.y_test):
        raise DataError("MNIST images and labels disagree in count")
    return mnist


def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with each class split in the same proportion, reproducibly."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    train = np.concatenate(train_idx) if train_idx else np.empty(0, np.int64)
    val = np.concatenate(val_idx) if val_idx else np.empty(0, np.int64)
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val


def held_out(
    y_train: np.ndarray, n_test: int, val_fraction: float, seed: int, limit: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test) a run uses: the stratified split, and with `limit` smaller sets.

    Training and calibration call this alike, so a version's temperature is fitted on exactly
    the validation images its training held out.
    """
    train_idx, val_idx = stratified_split(y_train, val_fraction, seed)
    if limit:
        train_idx = train_idx[:limit]
        val_idx = val_idx[: max(limit // 5, 100)]
    test_idx = np.arange(min(n_test, limit) if limit else n_test)
    return train_idx, val_idx, test_idx


def held_out_for_card(
    card: dict, y_train: np.ndarray, n_test: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`held_out` as a published version's card records its training run's split.

    Each seed holds out different images: anything measured "on images the model never saw"
    (calibration, the strings benchmark) must use the version's own split, not the default.
    """
    return held_out(y_train, n_test, *split_settings(card))


def split_settings(card: dict) -> tuple[float, int, int | None]:
    """(val_fraction, seed, limit): what decides which MNIST images a version held out."""
    from training.config import TrainConfig

    default = TrainConfig()
    config = card.get("config", {})
    return (
        float(config.get("val_fraction", default.val_fraction)),
        int(config.get("seed", default.seed)),
        config.get("limit"),
    )
