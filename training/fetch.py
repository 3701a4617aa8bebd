"""Data files from their public homes, verified and written atomically.

In: the URLs that may serve a file, tried in turn, and a check that turns what a URL sent into
the verified bytes to keep (or raises `DataError`). Out: the file in the cache, complete and
verified, or one `DataError` that names every URL and what was wrong with it.

Why one place: MNIST and the real-handwriting sets are fetched the same way, and a half-written
or altered file must never be read as data, whichever set it belongs to.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

TIMEOUT_S = 30


class DataError(RuntimeError):
    """A data file is missing, truncated, malformed or not the official one."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(dest: Path, data: bytes) -> None:
    """Write to a temp file in the same folder then rename, so no half-file is ever visible."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch(url: str, progress: bool) -> bytes:
    """GET a URL into memory (every file here is < 20 MB), with an optional progress bar."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 (fixed public homes)
        total = int(resp.headers.get("Content-Length") or 0) or None
        chunks = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False)
        while chunk := resp.read(1 << 16):
            chunks.append(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
    return b"".join(chunks)


# What a URL can do wrong: not answer, answer garbage, send half a file or another file.
_FETCH_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
    EOFError,
    zlib.error,
    DataError,
    ValueError,
)


def download(
    what: str, urls: Sequence[str], dest: Path, check: Callable[[bytes, str], bytes], progress: bool = True
) -> Path:
    """Fetch `what` from the first URL whose payload passes `check(payload, url)`; write what
    `check` returns to `dest` atomically."""
    problems = []
    for url in urls:
        try:
            keep = check(fetch(url, progress), url)
        except _FETCH_ERRORS as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        atomic_write(dest, keep)
        return dest
    raise DataError(f"{what}: no mirror reachable or valid; tried " + "; ".join(problems))
