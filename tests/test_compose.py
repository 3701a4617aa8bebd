"""compose.yaml for real: PostgreSQL, two app replicas and nginx, brought up with podman-compose.

The README's `docker compose` lines run as they are with podman-compose (and the README's
`export` lines' variables); PostgreSQL and nginx are stand-ins made from Debian's packages
(`tests/stand_ins.py`). Only the proxy's host port is the test's own (`DIGIT_APP_PORT`, which
compose.yaml reads), so a running stack cannot collide with the test.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from digit_app import model_store
from digit_app.config import PROJECT_ROOT
from tests.browser_support import chromium, correct_drawing, free_port, metric, wait_for_metrics
from tests.container_support import (
    COMPOSE_FILE,
    BuiltImage,
    Podman,
    readme_command,
    readme_exports,
    with_engine,
)
from tests.handwriting import handwriting_dir, misread_drawing, strokes_on_canvas
from tests.stand_ins import stand_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(2400)]

PROJECT_LABEL = "io.podman.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
REPLICAS = ("app1", "app2")


@dataclass
class Stack:
    url: str
    podman: Podman
    containers: dict[str, str]  # service -> container id

    def proxy_log(self) -> list[tuple[str, str, str]]:
        """(request, upstream, replica key) for each request the proxy logged."""
        proc = self.podman.run("logs", self.containers["proxy"])
        found = re.findall(r'"([^"]*)" \d+ upstream=(\S+) replica_key=(\S+)', proc.stdout + proc.stderr)
        return [tuple(f) for f in found]

    def upstreams_of(self, key: str) -> set[str]:
        return {upstream for _, upstream, k in self.proxy_log() if k == key}


def compose(words: list[str], env: dict[str, str]) -> None:
    cmd = with_engine(words)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def base_images() -> list[str]:
    """The images compose.yaml runs that it does not build (PostgreSQL, nginx)."""
    import yaml  # podman-compose's own dependency

    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"].values()
    return sorted({s["image"] for s in services if "build" not in s})


def wait_for_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(1)


@pytest.fixture(scope="module")
def stack(podman: Podman, app_image: BuiltImage) -> Iterator[Stack]:
    for image in base_images():
        stand_in(podman, image)
    port = free_port()
    env = {**podman.env, **readme_exports(), "DIGIT_APP_PORT": str(port)}
    down = readme_command("docker", "compose", "down", "-v")
    subprocess.run(with_engine(down), cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=600)
    try:
        compose(readme_command("docker", "compose", "up"), env)
        containers = {}
        for cid in podman.containers(f"label={PROJECT_LABEL}=digit-app"):
            service = podman.run(
                "inspect", "--format", f'{{{{index .Config.Labels "{SERVICE_LABEL}"}}}}', cid
            )
            containers[service.stdout.strip()] = cid
        assert set(containers) == {"db", "proxy", *REPLICAS}, containers
        for service in ("db", *REPLICAS):
            podman.wait_healthy(containers[service], timeout=300)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/_stcore/health")
        yield Stack(url, podman, containers)
    finally:
        compose(down, env)


def _contexts_on_both_replicas(browser: object, stack: Stack, tries: int = 16) -> dict[str, object]:
    """New browser contexts until one is on each replica (the proxy picks by a random cookie)."""
    pages: dict[str, object] = {}
    for _ in range(tries):
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(stack.url)
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        key = next(c["value"] for c in page.context.cookies() if c["name"] == "digit_app_replica")
        (upstream,) = stack.upstreams_of(key)
        if upstream in pages:
            page.context.close()
        else:
            pages[upstream] = page
        if len(pages) == len(REPLICAS):
            return pages
    raise AssertionError(f"{tries} browsers all landed on {list(pages)}: the proxy does not spread sessions")


def _seven(path: Path) -> Path:
    paper = np.full((120, 120), 235, np.uint8)
    cv2.putText(paper, "7", (12, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.5, 20, 9, cv2.LINE_AA)
    cv2.imwrite(str(path), paper)
    return path


def test_a_correction_in_one_replica_shows_in_the_other(stack: Stack) -> None:
    handwriting_dir()
    model_dir = PROJECT_ROOT / "model_store" / "mnist_cnn"
    sample, misread = misread_drawing(model_dir, model_store.latest_version(model_dir))
    truth = str(sample["label"])
    strokes = strokes_on_canvas(sample)
    with chromium() as browser:
        a, b = _contexts_on_both_replicas(browser, stack).values()
        b.get_by_role("link", name="Live confusion matrix").click()
        b.get_by_test_id("stMetric").filter(has_text="Samples").first.wait_for(timeout=120_000)

        correct_drawing(a, strokes, str(misread), truth)

        # The other replica's matrix refreshes by itself from the shared database.
        wait_for_metrics(b, {"Samples": "1", "Corrections": "1"}, timeout_ms=60_000)


def test_the_proxy_keeps_a_browser_session_on_one_replica(stack: Stack, tmp_path: Path) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.goto(stack.url)
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        key = next(c["value"] for c in context.cookies() if c["name"] == "digit_app_replica")
        # An upload is a plain HTTP request that only the replica holding the session accepts.
        page.get_by_role("link", name="Upload").click()
        upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
        upload.wait_for(state="attached", timeout=60_000)
        upload.set_input_files(str(_seven(tmp_path / "seven.png")))
        page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=60_000)
        assert metric(page) == "7"
        page.goto(stack.url)  # a new WebSocket, and Streamlit's static files again
        page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
        context.close()  # nginx logs a WebSocket when it closes
    time.sleep(2)
    requests = [(request, upstream) for request, upstream, k in stack.proxy_log() if k == key]
    paths = " ".join(request for request, _ in requests)
    assert "/_stcore/stream" in paths and "/_stcore/upload_file" in paths, paths
    assert len({upstream for _, upstream in requests}) == 1, requests
    assert len(requests) > 10, requests
