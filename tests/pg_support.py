"""A real, throw-away PostgreSQL server for the tests (Debian's `postgresql` package).

`initdb` refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user the package creates. No server binary: the tests that need one
fail under CI (where `.ci/run` installs it) and are skipped, saying so, elsewhere.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_support import free_port, in_ci


def _bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name)
    return candidates[0] if candidates else found


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server on a free loopback port; yields a SQLAlchemy URL; stops and deletes it after."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        _missing("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    runner: list[str] = []
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _missing("running as root and there is no 'postgres' user to run the server as")
        runner = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="pgtest-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            [*runner, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        subprocess.run(
            [
                *runner,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode()[-2000:] + (log.read_text()[-2000:] if log.exists() else "")
        raise RuntimeError(f"could not start PostgreSQL: {detail}") from exc
    finally:
        subprocess.run(
            [*runner, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60
        )
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
