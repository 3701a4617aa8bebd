"""Stand-ins for the base images the Dockerfile and compose.yaml name, made from Debian's packages.

No image registry can be reached from these machines, so `python:3.11.x-slim-bookworm`,
`postgres:15-bookworm` and `nginx:...` cannot be pulled. Each is made here instead and tagged
with the name the project's files use, so those files are built and run as they are:

- `debian:bookworm-slim`: `debootstrap --variant=minbase bookworm`, cleaned as the slim
  images are (no apt lists, no docs), imported into podman;
- `python:*-slim-bookworm`: bookworm's Python 3.11 with pip and venv, `python` on the PATH,
  `pip install` allowed as root (the official image's Python is not Debian's, so Debian's
  "externally managed" marker is removed), LANG=C.UTF-8, and this machine's CA bundle with a
  pip.conf that trusts it (the registries' TLS here is signed by a local authority);
- `postgres:15-bookworm` and `nginx:*`: Debian's PostgreSQL 15 and nginx with the parts of the
  official images' interface compose.yaml uses (POSTGRES_* variables and the data folder;
  the conf.d folder, logs on stdout, `daemon off`).

Each image carries a label with a hash of its recipe; an image already in the test store with
the same recipe is reused, so only a new machine (or a changed recipe) pays for building them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.container_support import Podman

LABEL = "org.digit-app.stand-in"
DEBIAN = "docker.io/library/debian:bookworm-slim"
MIRROR = os.environ.get("DIGIT_APP_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

SOURCES = f"""\
deb {MIRROR} bookworm main
deb {MIRROR} bookworm-updates main
deb {MIRROR.replace("/debian", "/debian-security")} bookworm-security main
"""
# As in Debian's slim images: packages installed later bring no documentation.
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
"""

APT_INSTALL = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} "
    "&& rm -rf /var/lib/apt/lists/*"
)

PYTHON = f"""\
FROM {DEBIAN}
RUN {APT_INSTALL.format("python3 python3-pip python3-venv python-is-python3 ca-certificates netbase tzdata")} \\
    && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
ENV LANG=C.UTF-8
CMD ["python3"]
"""
PIP_CONF = f"[global]\ncert = {CA_BUNDLE}\n"

POSTGRES = f"""\
FROM {DEBIAN}
RUN mkdir -p /etc/postgresql-common/createcluster.d \\
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/stand-in.conf \\
    && {APT_INSTALL.format("postgresql-15")} \\
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
"""
# The official entrypoint's contract, as far as compose.yaml relies on it: an empty data folder
# gets a cluster owned by POSTGRES_USER with POSTGRES_PASSWORD (scram over the network) and the
# database POSTGRES_DB; the server runs as the postgres user and listens on every address.
POSTGRES_ENTRYPOINT = """\
#!/bin/sh
set -eu
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user="${POSTGRES_USER:-postgres}"
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \\
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U "$user" "$db"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
fi
exec "$@"
"""

NGINX = f"""\
FROM {DEBIAN}
RUN {APT_INSTALL.format("nginx")} \\
    && rm -f /etc/nginx/sites-enabled/default \\
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""


def _recipe_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def debian_base(podman: Podman) -> str:
    """`debian:bookworm-slim` from debootstrap (about a minute or two), unless already in the store."""
    recipe = _recipe_hash("debootstrap --variant=minbase bookworm", SOURCES, DPKG_SLIM)
    if podman.label(DEBIAN, LABEL) == recipe:
        return DEBIAN
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert proc.returncode == 0, f"debootstrap failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        (root / "etc/apt/sources.list").write_text(SOURCES)
        (root / "etc/dpkg/dpkg.cfg.d/slim").write_text(DPKG_SLIM)
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        proc = subprocess.run(
            [
                "podman",
                "import",
                "--change",
                f"LABEL {LABEL}={recipe}",
                "--change",
                'CMD ["bash"]',
                "-",
                DEBIAN,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=podman.env,
            timeout=900,
        )
        tar.wait()
        assert proc.returncode == 0, f"podman import failed:\n{proc.stderr[-3000:]}"
    return DEBIAN


def _build(podman: Podman, image: str, containerfile: str, files: dict[str, str | Path]) -> str:
    """Build `image` from a recipe and the files it copies, unless the same recipe is in the store."""
    contents = {name: (src.read_text() if isinstance(src, Path) else src) for name, src in files.items()}
    base = podman.label(debian_base(podman), LABEL) or ""
    recipe = _recipe_hash(containerfile, *(f"{k}={v}" for k, v in sorted(contents.items())), base)
    if podman.label(image, LABEL) == recipe:
        return image
    with tempfile.TemporaryDirectory(prefix="stand-in-") as tmp:
        context = Path(tmp)
        (context / "Containerfile").write_text(containerfile)
        for name, text in contents.items():
            (context / name).write_text(text)
            (context / name).chmod(0o755 if name.endswith(".sh") else 0o644)
        podman.run("build", "--label", f"{LABEL}={recipe}", "-t", image, str(context), timeout=1800)
    return image


def python_base(podman: Podman, image: str) -> str:
    """A stand-in for the official Python image `image` (e.g. python:3.11.13-slim-bookworm)."""
    return _build(podman, image, PYTHON, {"ca-certificates.crt": CA_BUNDLE, "pip.conf": PIP_CONF})


def postgres_image(podman: Podman, image: str) -> str:
    return _build(podman, image, POSTGRES, {"docker-entrypoint.sh": POSTGRES_ENTRYPOINT})


def nginx_image(podman: Podman, image: str) -> str:
    return _build(podman, image, NGINX, {})


def qualified(image: str) -> str:
    """The full name a pull from Docker Hub would give (`python:3.11` -> docker.io/library/python:3.11).

    podman finds a short name in its store under this name, as after a real pull.
    """
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"


def stand_in(podman: Podman, image: str) -> str:
    """The stand-in for a base image the project names, chosen by its repository name."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    makers = {"python": python_base, "postgres": postgres_image, "nginx": nginx_image}
    assert name in makers, f"no stand-in for {image}: these machines cannot pull images"
    return makers[name](podman, qualified(image))


def smoke_run(podman: Podman, image: str) -> None:
    """Run `true` in a container: podman that cannot run one fails the test (CI) or skips it."""
    from tests.container_support import unavailable

    proc = podman.run("run", "--rm", image, "true", check=False, timeout=300)
    if proc.returncode != 0:
        unavailable(f"podman cannot run a container here: {proc.stderr.strip()[-1500:]}")
