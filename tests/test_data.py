"""training/data.py: IDX parsing, checksum verification, mirror download and the stratified split.

Everything here is fast and offline: downloads go to a real HTTP server on 127.0.0.1 that
serves copies of the shared MNIST files (and broken variants of them) from a temp folder.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from tests.http_support import FolderHandler, serve
from training import data, fetch
from training.data import DataError

SMALL = "t10k-labels-idx1-ubyte"  # 4.5 kB gzipped: the file the single-file download tests use
NAMES = list(data.MNIST_FILES)


# ----------------------------------------------------------------------------- helpers
def make_idx(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode an array as IDX (big-endian), the way the MNIST files are stored."""
    dtype = np.dtype(data._IDX_DTYPES[code])
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def tiny_images() -> np.ndarray:
    return (np.arange(2 * 4 * 3) * 7 % 256).astype(np.uint8).reshape(2, 4, 3)


def tiny_labels() -> np.ndarray:
    return np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)


def official_raw(mnist_dir: Path, name: str) -> bytes:
    return data.read_maybe_gzip(data._find_in(mnist_dir, name))


def official_gz(mnist_dir: Path, name: str) -> bytes:
    path = data._find_in(mnist_dir, name)
    raw = path.read_bytes()
    return raw if raw[:2] == b"\x1f\x8b" else gzip.compress(raw)


def altered(raw: bytes) -> bytes:
    """The same IDX file with one value changed: still parses, but is not the official file."""
    b = bytearray(raw)
    b[-1] = (b[-1] + 1) % 256
    return bytes(b)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- parse_idx
def test_parse_idx_images_round_trip() -> None:
    images = tiny_images()
    out = data.parse_idx(make_idx(images), "imgs")
    assert out.shape == (2, 4, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_parse_idx_labels_round_trip() -> None:
    labels = tiny_labels()
    out = data.parse_idx(make_idx(labels), "labels")
    assert out.shape == (8,)
    np.testing.assert_array_equal(out, labels)


def test_parse_idx_multibyte_type_is_native_order() -> None:
    values = np.array([[1, -2], [300, -40000]], dtype=np.int32)
    out = data.parse_idx(make_idx(values, 0x0C), "ints")
    assert out.dtype == np.dtype("=i4")
    np.testing.assert_array_equal(out, values)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)))
def test_parse_idx_round_trips_any_uint8_array(array: np.ndarray) -> None:
    np.testing.assert_array_equal(data.parse_idx(make_idx(array)), array)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", ["truncated"]),
        (b"\x00\x00", ["truncated"]),
        # header says 3 dims (4 + 12 header bytes) but stops after the first size
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), ["truncated header"]),
    ],
    ids=["empty", "two-bytes", "truncated-header"],
)
def test_parse_idx_truncated_header(raw: bytes, words: list[str]) -> None:
    with pytest.raises(DataError) as err:
        data.parse_idx(raw, "some-file-idx3-ubyte")
    assert "some-file-idx3-ubyte" in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_parse_idx_truncated_body() -> None:
    raw = make_idx(tiny_images())[:-5]
    with pytest.raises(DataError, match="truncated") as err:
        data.parse_idx(raw, "train-images-idx3-ubyte")
    assert "train-images-idx3-ubyte" in str(err.value)


def test_parse_idx_trailing_bytes() -> None:
    raw = make_idx(tiny_labels()) + b"\x00\x01"
    with pytest.raises(DataError, match="trailing bytes") as err:
        data.parse_idx(raw, "train-labels-idx1-ubyte")
    assert "train-labels-idx1-ubyte" in str(err.value)


@pytest.mark.parametrize(
    "header",
    [
        b"\x01\x00\x08\x01",  # first two bytes must be zero
        b"\x00\x00\x07\x01",  # unknown type code
        b"\x00\x00\x08\x00",  # zero dimensions
        b"PK\x03\x04",  # a zip file, say
    ],
    ids=["nonzero-prefix", "bad-type", "zero-dims", "zip"],
)
def test_parse_idx_wrong_magic(header: bytes) -> None:
    raw = header + struct.pack(">I", 1) + b"\x05"
    with pytest.raises(DataError, match="wrong magic number") as err:
        data.parse_idx(raw, "t10k-labels-idx1-ubyte")
    assert "t10k-labels-idx1-ubyte" in str(err.value)


# ----------------------------------------------------------------------------- read_maybe_gzip
def test_read_maybe_gzip_reads_raw_and_gzipped(tmp_path: Path) -> None:
    payload = make_idx(tiny_labels())
    (tmp_path / "raw").write_bytes(payload)
    (tmp_path / "packed.gz").write_bytes(gzip.compress(payload))
    assert data.read_maybe_gzip(tmp_path / "raw") == payload
    assert data.read_maybe_gzip(tmp_path / "packed.gz") == payload


def test_read_maybe_gzip_truncated_gzip_names_file(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(make_idx(tiny_labels()) * 50)[:-20])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as err:
        data.read_maybe_gzip(path)
    assert str(path) in str(err.value)


def test_read_maybe_gzip_corrupt_deflate_stream_is_data_error(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    blob = bytearray(gzip.compress(make_idx(np.arange(5000, dtype=np.uint8) % 10)))
    blob[30] ^= 0xFF  # inside the deflate stream: zlib itself rejects it
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError) as err:
        data.read_maybe_gzip(path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- explicit folder
def test_load_mnist_from_gz_folder(mnist_dir: Path) -> None:
    mnist = data.load_mnist(data_dir=mnist_dir, progress=False)
    assert mnist.x_train.shape == (60000, 28, 28)
    assert mnist.y_train.shape == (60000,)
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_test.shape == (10000,)
    for arr in (mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test):
        assert arr.dtype == np.uint8
    assert set(np.unique(mnist.y_train)) == set(range(10))
    assert mnist.y_train.max() == 9 and mnist.x_train.max() == 255
    assert mnist.source == str(mnist_dir)
    assert mnist.sha256 == data.MNIST_FILES


def test_load_mnist_mixed_raw_and_gz_folder(mnist_dir: Path, tmp_path: Path) -> None:
    """Raw (decompressed) files are accepted as well as gzipped ones."""
    for name in NAMES:
        if name.startswith("t10k"):
            (tmp_path / name).write_bytes(official_raw(mnist_dir, name))
        else:
            (tmp_path / f"{name}.gz").write_bytes(official_gz(mnist_dir, name))
    mnist = data.load_mnist(data_dir=tmp_path, progress=False)
    reference = data.load_mnist(data_dir=mnist_dir, progress=False)
    np.testing.assert_array_equal(mnist.x_test, reference.x_test)
    np.testing.assert_array_equal(mnist.y_test, reference.y_test)
    assert len(mnist.x_train) == 60000


def test_load_mnist_uses_mnist_dir_env(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    paths = data.locate(progress=False)
    assert set(paths) == set(NAMES)
    assert all(p.parent.resolve() == mnist_dir.resolve() for p in paths.values())


def test_explicit_folder_missing_file(mnist_dir: Path, tmp_path: Path) -> None:
    for name in NAMES:
        if name != "train-labels-idx1-ubyte":
            (tmp_path / f"{name}.gz").symlink_to(data._find_in(mnist_dir, name))
    with pytest.raises(DataError, match="missing") as err:
        data.load_mnist(data_dir=tmp_path, progress=False)
    assert "train-labels-idx1-ubyte" in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_explicit_folder_wrong_hash_is_rejected_and_kept(mnist_dir: Path, tmp_path: Path) -> None:
    for name in NAMES:
        if name != SMALL:
            (tmp_path / f"{name}.gz").symlink_to(data._find_in(mnist_dir, name))
    bad = tmp_path / SMALL  # a raw copy with one label changed: parses fine, wrong checksum
    bad.write_bytes(altered(official_raw(mnist_dir, SMALL)))
    with pytest.raises(DataError, match="SHA-256") as err:
        data.load_mnist(data_dir=tmp_path, progress=False)
    assert str(bad) in str(err.value)
    assert bad.exists(), "a user's own data folder must never be modified"


# ----------------------------------------------------------------------------- mirror server
@dataclass
class Mirrors:
    """A local HTTP server; each sub-folder of its root is one 'mirror'."""

    base: str
    root: Path
    requests: list[str] = field(default_factory=list)

    def url(self, mirror: str) -> str:
        return f"{self.base}/{mirror}/"

    def hits(self, mirror: str) -> list[str]:
        return [p for p in self.requests if p.startswith(f"/{mirror}/")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mirrors(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrors]:
    root = tmp_path_factory.mktemp("mirrors")
    for folder in ("empty", "good", "truncated", "altered", "flipped", "garbage", "short"):
        (root / folder).mkdir()
    for name in NAMES:
        gz = official_gz(mnist_dir, name)
        (root / "good" / f"{name}.gz").write_bytes(gz)
        if name == SMALL:
            raw = official_raw(mnist_dir, name)
            (root / "truncated" / f"{name}.gz").write_bytes(gz[: len(gz) // 2])
            (root / "altered" / f"{name}.gz").write_bytes(gzip.compress(altered(raw)))
            flipped = bytearray(gz)
            flipped[30] ^= 0xFF  # corrupt deflate data: zlib.error, not a gzip/CRC error
            (root / "flipped" / f"{name}.gz").write_bytes(bytes(flipped))
            (root / "garbage" / f"{name}.gz").write_bytes(b"<html>rate limited</html>")
            (root / "short" / f"{name}.gz").write_bytes(gz)

    log: list[str] = []

    class Handler(FolderHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/short/"):  # announces the full length, sends half, hangs up
                self.requests.append(self.path)
                body = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

    with serve(root, log, Handler) as base:
        yield Mirrors(base=base, root=root, requests=log)


@pytest.fixture
def no_env_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make sure nothing falls back to MNIST_DIR or the real user cache."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("DIGIT_APP_CACHE_DIR", str(tmp_path / "user-cache"))


def test_download_skips_404_mirror(mirrors: Mirrors, tmp_path: Path, mnist_dir: Path) -> None:
    cache = tmp_path / "cache"
    path = data.download(SMALL, cache, [mirrors.url("empty"), mirrors.url("good")], progress=False)
    assert path == cache / f"{SMALL}.gz"
    assert data.read_maybe_gzip(path) == official_raw(mnist_dir, SMALL)
    assert mirrors.hits("empty") and mirrors.hits("good")
    assert files_in(cache) == [f"{SMALL}.gz"]


def test_download_first_good_mirror_wins(mirrors: Mirrors, tmp_path: Path) -> None:
    before = len(mirrors.hits("empty"))
    data.download(SMALL, tmp_path, [mirrors.url("good"), mirrors.url("empty")], progress=False)
    assert len(mirrors.hits("empty")) == before, "no need to try a later mirror"


@pytest.mark.parametrize("bad", ["truncated", "altered", "garbage", "short"])
def test_download_rejects_corrupt_mirror(mirrors: Mirrors, tmp_path: Path, mnist_dir: Path, bad: str) -> None:
    n_bad = len(mirrors.hits(bad))
    path = data.download(SMALL, tmp_path, [mirrors.url(bad), mirrors.url("good")], progress=False)
    assert len(mirrors.hits(bad)) == n_bad + 1, "the corrupt mirror was tried first"
    assert data.read_maybe_gzip(path) == official_raw(mnist_dir, SMALL)
    assert files_in(tmp_path) == [f"{SMALL}.gz"]


def test_download_rejects_mirror_with_corrupt_deflate_stream(mirrors: Mirrors, tmp_path: Path) -> None:
    path = data.download(SMALL, tmp_path, [mirrors.url("flipped"), mirrors.url("good")], progress=False)
    assert path.exists()


def test_download_all_mirrors_fail(mirrors: Mirrors, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    urls = [
        mirrors.url("empty"),
        mirrors.url("truncated"),
        mirrors.url("altered"),
        f"http://127.0.0.1:{_closed_port()}/nothing-listens/",
    ]
    with pytest.raises(DataError, match="no mirror") as err:
        data.download(SMALL, cache, urls, progress=False)
    message = str(err.value)
    assert SMALL in message
    for url in urls:
        assert url in message, "each mirror's problem is reported"
    assert files_in(cache) == [], "no partial or temp file may be left behind"


def test_download_failed_write_leaves_no_temp_file(
    mirrors: Mirrors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fetch.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        data.download(SMALL, tmp_path, [mirrors.url("good")], progress=False)
    assert files_in(tmp_path) == []


def test_load_mnist_downloads_then_uses_cache(
    mirrors: Mirrors, tmp_path: Path, mnist_dir: Path, no_env_data: None
) -> None:
    cache = tmp_path / "cache"
    urls = [mirrors.url("empty"), mirrors.url("good")]
    mnist = data.load_mnist(cache_dir=cache, mirrors=urls, progress=False)
    assert files_in(cache) == sorted(f"{n}.gz" for n in NAMES)
    assert mnist.source == str(cache)
    reference = data.load_mnist(data_dir=mnist_dir, progress=False)
    np.testing.assert_array_equal(mnist.x_train, reference.x_train)
    np.testing.assert_array_equal(mnist.y_test, reference.y_test)

    served = len(mirrors.hits("good"))
    again = data.locate(cache_dir=cache, mirrors=urls, progress=False)
    assert len(mirrors.hits("good")) == served, "cached files are not downloaded again"
    assert all(p.parent == cache for p in again.values())


def test_load_mnist_default_cache_comes_from_settings(
    mirrors: Mirrors, tmp_path: Path, no_env_data: None
) -> None:
    paths = data.locate(mirrors=[mirrors.url("good")], progress=False)
    assert all(p.parent == tmp_path / "user-cache" / "mnist" for p in paths.values())


def _cache_with_good_copies(mirrors: Mirrors, cache: Path) -> None:
    cache.mkdir()
    for name in NAMES:
        if name != SMALL:
            shutil.copy(mirrors.root / "good" / f"{name}.gz", cache / f"{name}.gz")


def test_corrupt_cached_file_is_removed_then_redownloaded(
    mirrors: Mirrors, tmp_path: Path, mnist_dir: Path, no_env_data: None
) -> None:
    cache = tmp_path / "cache"
    _cache_with_good_copies(mirrors, cache)
    bad = cache / f"{SMALL}.gz"
    bad.write_bytes(gzip.compress(altered(official_raw(mnist_dir, SMALL))))
    urls = [mirrors.url("good")]

    with pytest.raises(DataError, match="SHA-256") as err:
        data.load_mnist(cache_dir=cache, mirrors=urls, progress=False)
    assert str(bad) in str(err.value)
    assert not bad.exists(), "a corrupt cached copy is dropped"

    mnist = data.load_mnist(cache_dir=cache, mirrors=urls, progress=False)
    assert len(mnist.y_test) == 10000
    assert data.read_maybe_gzip(bad) == official_raw(mnist_dir, SMALL)


def test_truncated_cached_file_is_removed(mirrors: Mirrors, tmp_path: Path, no_env_data: None) -> None:
    cache = tmp_path / "cache"
    _cache_with_good_copies(mirrors, cache)
    bad = cache / f"{SMALL}.gz"
    gz = (mirrors.root / "good" / f"{SMALL}.gz").read_bytes()
    bad.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError) as err:
        data.load_mnist(cache_dir=cache, mirrors=[mirrors.url("good")], progress=False)
    assert str(bad) in str(err.value)
    assert not bad.exists(), "a corrupt cached copy is dropped"


def test_download_skips_mirror_speaking_garbage(mirrors: Mirrors, tmp_path: Path) -> None:
    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        urls = [f"http://127.0.0.1:{server.server_address[1]}/", mirrors.url("good")]
        path = data.download(SMALL, tmp_path, urls, progress=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert path.exists()


# ----------------------------------------------------------------------------- stratified_split
def _labels(seed: int = 0) -> np.ndarray:
    counts = [100, 37, 250, 11, 60, 3, 90, 120, 75, 1]  # uneven on purpose
    y = np.repeat(np.arange(10, dtype=np.uint8), counts)
    np.random.default_rng(seed).shuffle(y)
    return y


def test_stratified_split_partitions_all_indices() -> None:
    y = _labels()
    train, val = data.stratified_split(y, 0.2, seed=1)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert len(np.unique(train)) == len(train) and len(np.unique(val)) == len(val)


def test_stratified_split_keeps_class_proportions() -> None:
    y = _labels()
    train, val = data.stratified_split(y, 0.2, seed=1)
    for label in range(10):
        n = int((y == label).sum())
        n_val = int((y[val] == label).sum())
        assert n_val == round(n * 0.2)
        assert int((y[train] == label).sum()) == n - n_val


def test_stratified_split_is_deterministic_for_a_seed() -> None:
    y = _labels()
    a_train, a_val = data.stratified_split(y, 0.25, seed=7)
    b_train, b_val = data.stratified_split(y, 0.25, seed=7)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    c_train, c_val = data.stratified_split(y, 0.25, seed=8)
    assert not np.array_equal(a_val, c_val)
    assert not np.array_equal(a_train, c_train)


def test_stratified_split_shuffles_across_classes() -> None:
    y = np.repeat(np.arange(10), 50)
    train, val = data.stratified_split(y, 0.2, seed=0)
    assert not np.all(np.diff(y[train]) >= 0), "train indices are not grouped by class"
    assert not np.all(np.diff(y[val]) >= 0), "val indices are not grouped by class"


def test_stratified_split_zero_fraction() -> None:
    y = _labels()
    train, val = data.stratified_split(y, 0.0, seed=3)
    assert len(val) == 0
    np.testing.assert_array_equal(np.sort(train), np.arange(len(y)))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_stratified_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        data.stratified_split(_labels(), fraction, seed=0)


def test_stratified_split_on_real_labels(mnist_dir: Path) -> None:
    y = data.load_mnist(data_dir=mnist_dir, progress=False).y_train
    train, val = data.stratified_split(y, 0.1, seed=42)
    assert len(train) + len(val) == 60000
    assert abs(len(val) - 6000) <= 10
    fractions = np.bincount(y[val], minlength=10) / np.bincount(y, minlength=10)
    assert np.allclose(fractions, 0.1, atol=0.001)
