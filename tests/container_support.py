"""podman for the container tests: the engine, the README's deployment commands, the app image.

There is no Docker engine on these machines and no image registry can be reached, so the
tests build and run the images with Debian's podman (as root), and the base images the
Dockerfile and compose.yaml name are stand-ins made from Debian's packages
(`tests/stand_ins.py`).

The engine keeps its images, containers and volumes in a store of its own
(`DIGIT_APP_TEST_PODMAN_HOME`, default /var/tmp/digit-app-podman), so the tests can use the
README's names (`digit-app`, `digit-app-data`, ...) and delete what they made without ever
touching a developer's own podman state, and so later runs on the same machine reuse the layer
cache. Its settings are given through podman's configuration files and environment, never as
options of the commands, so that the commands the tests run are the README's, word for word,
with `podman` for `docker` (and `podman-compose` for `docker compose`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from digit_app.config import PROJECT_ROOT
from tests.browser_support import free_port, in_ci

README = PROJECT_ROOT / "README.md"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_FILE = PROJECT_ROOT / "compose.yaml"

# containers.conf: podman's defaults set rlimits and a pids limit that this kind of VM refuses,
# and Debian's crun cannot run on its hybrid cgroups, so runc is named.
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
pids_limit = 0

[engine]
runtime = "runc"
tmp_dir = "{home}/tmp"
"""
STORAGE_CONF = """\
[storage]
driver = "{driver}"
graphroot = "{home}/storage"
runroot = "{home}/run"
"""


def unavailable(message: str) -> None:
    """Fail under CI (where .ci/run installs podman), skip elsewhere, saying why."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Podman:
    """The podman command with the tests' own store and settings."""

    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.home / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.home / "storage.conf"),
            # OCI images drop HEALTHCHECK; Docker's image format keeps it.
            "BUILDAH_FORMAT": "docker",
        }

    def configure(self) -> None:
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        driver = os.environ.get("DIGIT_APP_TEST_PODMAN_DRIVER", "overlay")
        (self.home / "containers.conf").write_text(CONTAINERS_CONF.format(home=self.home))
        (self.home / "storage.conf").write_text(STORAGE_CONF.format(home=self.home, driver=driver))

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`podman ARGS`; a failure raises with the command's output."""
        proc = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout, cwd=cwd
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"podman {shlex.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        return proc

    def label(self, image: str, key: str) -> str | None:
        """An image's label, or None when the image (or the label) is not in the store."""
        proc = self.run("image", "inspect", "--format", f'{{{{index .Labels "{key}"}}}}', image, check=False)
        value = proc.stdout.strip()
        return value if proc.returncode == 0 and value not in {"", "<no value>"} else None

    def size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def containers(self, *filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return self.run("ps", "-a", "--format", "{{.ID}}", *args).stdout.split()

    def containers_of(self, image: str, *filters: str) -> list[str]:
        """Containers made from `image` (podman's ancestor filter misses a short name like digit-app)."""
        image_id = self.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        args = [a for f in filters for a in ("--filter", f)]
        rows = self.run("ps", "-a", "--format", "{{.ID}} {{.ImageID}}", *args).stdout.splitlines()
        return [row.split()[0] for row in rows if image_id.startswith(row.split()[-1])]

    def wait_healthy(self, container: str, timeout: float = 300) -> None:
        """Run the image's own HEALTHCHECK until it passes, then check the state podman keeps.

        podman schedules health checks with systemd timers; without systemd (this VM) nothing
        runs them, so this runs the image's check command as a timer would, once a second.
        """
        deadline = time.monotonic() + timeout
        while self.run("healthcheck", "run", container, check=False).returncode != 0:
            state = self.run("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                logs = self.run("logs", "--tail", "40", container, check=False)
                raise AssertionError(
                    f"container {container} is {state}, not healthy:\n{logs.stdout}{logs.stderr}"
                )
            time.sleep(1)
        status = self.run("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        assert status == "healthy", status

    def process_uids(self, container: str) -> dict[str, set[int]]:
        """Each process of the container (its command line) and its real, effective, saved and fs uids."""
        rows = self.run("top", container, "hpid", "args").stdout.splitlines()[1:]
        uids = {}
        for row in rows:
            hpid, _, args = row.strip().partition(" ")
            try:
                status = Path(f"/proc/{hpid}/status").read_text()
            except FileNotFoundError:  # ended since podman listed it
                continue
            line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
            uids[args.strip()] = {int(u) for u in line.split()[1:]}
        return uids


@functools.cache
def find_engine() -> Podman | str:
    """The engine, or why it cannot be used here (checked once per test session)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "the container tests run podman as root (rootless podman needs subuid ranges set up)"
    podman = Podman(Path(os.environ.get("DIGIT_APP_TEST_PODMAN_HOME", "/var/tmp/digit-app-podman")))
    podman.configure()
    proc = podman.run("info", check=False, timeout=120)
    if proc.returncode != 0:
        return f"podman cannot run here: {proc.stderr.strip()[-1000:]}"
    return podman


def engine() -> Podman:
    """podman, ready; or the test fails (CI) or is skipped (elsewhere), saying why."""
    checked = find_engine()
    if isinstance(checked, str):
        unavailable(checked)
    return checked


# --- The README's deployment commands --------------------------------------------------------


def _deployment_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Deployment\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Deployment' section"
    return match.group(1)


def _shell_lines() -> list[list[str]]:
    """The `docker` and `export` lines of the Deployment section's code blocks, as words.

    Continuation lines are joined and comments dropped; other lines (curl, python) are not read.
    """
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", _deployment_section(), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if re.match(r"(docker|export)\s", line):
                lines.append(shlex.split(line, comments=True))
    return lines


def readme_commands() -> list[list[str]]:
    """Every `docker ...` command in the README's Deployment section, in its order."""
    return [words for words in _shell_lines() if words[0] == "docker"]


def readme_exports() -> dict[str, str]:
    """The variables the Deployment section's `export` lines set (e.g. the compose passwords)."""
    return dict(w.partition("=")[::2] for words in _shell_lines() if words[0] == "export" for w in words[1:])


def readme_command(*prefix: str) -> list[str]:
    """The README's first command starting with these words (`docker build`, `docker compose up`)."""
    found = [c for c in readme_commands() if c[: len(prefix)] == list(prefix)]
    assert found, f"README.md's Deployment section has no `{' '.join(prefix)}` command"
    return found[0]


def build_tag() -> str:
    words = readme_command("docker", "build")
    return words[words.index("-t") + 1]


def app_run_command() -> list[str]:
    """The README's `docker run` of the app image (the section also runs TensorFlow Serving)."""
    tag = build_tag()
    found = [c for c in readme_commands() if c[:2] == ["docker", "run"] and c[-1] == tag]
    assert found, f"README.md's Deployment section has no `docker run ... {tag}`"
    return found[0]


def with_engine(words: list[str]) -> list[str]:
    """A README command for this machine's engine: `docker compose` -> podman-compose, `docker` -> podman."""
    if words[:2] == ["docker", "compose"]:
        compose = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
        return [compose, *words[2:]]
    assert words[0] == "docker", words
    return ["podman", *words[1:]]


def dockerfile_bases() -> list[str]:
    """The images the Dockerfile's stages start FROM (not its own stages)."""
    stages, bases = set(), []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            image = next(w for w in words[1:] if not w.startswith("--"))
            if image not in stages and image not in bases:
                bases.append(image)
            if len(words) >= 4 and words[-2].upper() == "AS":
                stages.add(words[-1])
    return bases


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    seconds: float  # the `docker build` command's wall time in this session (layer cache and all)
    size: int  # bytes, as podman reports it


def build_app_image(podman: Podman) -> BuiltImage:
    """Run the README's `docker build` in the project folder (the Dockerfile as it is)."""
    words = with_engine(readme_command("docker", "build"))
    started = time.monotonic()
    proc = subprocess.run(
        words, cwd=PROJECT_ROOT, env=podman.env, capture_output=True, text=True, timeout=3600
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{shlex.join(words)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    tag = build_tag()
    return BuiltImage(tag, seconds, podman.size(tag))


# --- The app's container, started as the README says -------------------------------------------


def _option(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]


def run_command(port: int) -> list[str]:
    """The README's `docker run` for podman, with `port` as the host side of its `-p`."""
    words = with_engine(app_run_command())
    i = words.index("-p") + 1
    words[i] = f"{port}:{words[i].split(':')[-1]}"
    return words


def admin_password() -> str:
    env = dict(e.partition("=")[::2] for e in _option(app_run_command(), "-e"))
    return env["DIGIT_APP_ADMIN_PASSWORD"]


def volumes() -> list[str]:
    return [v.split(":")[0] for v in _option(app_run_command(), "-v")]


@contextlib.contextmanager
def running_app(podman: Podman, tag: str, log: Path) -> Iterator[tuple[str, str, float]]:
    """Start the README's `docker run` (attached, as a person runs it) and wait for the HEALTHCHECK.

    Yields the container's id, the app's URL and the seconds from the command to healthy; stops
    and removes the container after.
    """
    port = free_port()
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(run_command(port), env=podman.env, stdout=out, stderr=subprocess.STDOUT)
    container = None
    try:
        deadline = time.monotonic() + 120
        while not (found := podman.containers_of(tag, "status=running")):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        (container,) = found
        podman.wait_healthy(container, timeout=300)
        yield container, f"http://127.0.0.1:{port}", time.monotonic() - started
    finally:
        if container:
            podman.run("stop", "--time", "30", container, check=False)
            podman.run("rm", "--force", container, check=False)
        proc.terminate()
        proc.wait(timeout=60)
