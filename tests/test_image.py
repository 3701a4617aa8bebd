"""The Docker image, built from the Dockerfile as it is and used for real in a browser.

The README's `docker build` and `docker run` commands run with podman (`tests/container_support`)
on a stand-in for the Dockerfile's base image made from Debian's packages (`tests/stand_ins`).
The container is used as a person would: draw, correct, retrain (refused without the admin
password, allowed with it), then replaced by a new container on the same volumes that still
has the correction. The only changes to the README's `docker run` are the engine's name and
the host side of `-p` (a free port, so a running app cannot collide with the test).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from digit_app import model_store
from digit_app.config import PROJECT_ROOT
from tests.browser_support import (
    chromium,
    correct_drawing,
    draw,
    wait_for_metrics,
    wait_for_strokes,
    wait_until_idle,
)
from tests.container_support import BuiltImage, Podman, admin_password, running_app, volumes
from tests.handwriting import handwriting_dir, misread_drawing, strokes_on_canvas

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(3600)]

APP_UID = 10001
OUTCOME = re.compile(r"Job \d+ (published|rejected|failed|cancelled) at")


def remove_leftovers(podman: Podman, image: BuiltImage) -> None:
    for container in podman.containers_of(image.tag):
        podman.run("rm", "--force", container, check=False)
    podman.run("volume", "rm", "--force", *volumes(), check=False)


def copy_mnist(podman: Podman, container: str, mnist_dir: Path, tmp_path: Path) -> None:
    """Put MNIST where the app's download would (no internet here): retraining replays it."""
    staged = tmp_path / "cache" / "digit-app" / "mnist"
    staged.mkdir(parents=True)
    for f in mnist_dir.iterdir():
        if f.is_file():
            (staged / f.name).write_bytes(f.read_bytes())
    podman.run("cp", f"{staged.parent}", f"{container}:/app/.cache/")


def wait_for_retraining_process(podman: Podman, container: str, timeout: float = 120) -> dict[str, set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        uids = podman.process_uids(container)
        if any("training.retrain" in args for args in uids):
            return uids
        assert time.monotonic() < deadline, f"no retraining process in the container: {uids}"
        time.sleep(0.5)


def test_image_serves_keeps_data_and_retrains(
    podman: Podman, app_image: BuiltImage, mnist_dir: Path, tmp_path: Path
) -> None:
    handwriting_dir()
    served = model_store.latest_version(PROJECT_ROOT / "model_store" / "mnist_cnn")
    sample, misread = misread_drawing(PROJECT_ROOT / "model_store" / "mnist_cnn", served)
    truth = str(sample["label"])
    strokes = strokes_on_canvas(sample)
    figures = {"image": app_image.tag, "size_bytes": app_image.size, "build_seconds": app_image.seconds}
    log = tmp_path / "containers.log"
    remove_leftovers(podman, app_image)
    try:
        with running_app(podman, app_image.tag, log) as (container, url, seconds), chromium() as browser:
            figures["start_to_healthy_seconds"] = [round(seconds, 1)]
            uids = podman.process_uids(container)
            assert uids and all(ids == {APP_UID} for ids in uids.values()), uids
            copy_mnist(podman, container, mnist_dir, tmp_path)

            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.goto(url)
            page.locator("canvas.upper-canvas").wait_for(timeout=120_000)
            correct_drawing(page, strokes, str(misread), truth)

            page.get_by_role("link", name="Retrain").click()
            password_box = page.get_by_label("Admin password")
            password_box.wait_for(timeout=60_000)
            page.get_by_role("button", name="Retrain", exact=True).click()
            page.get_by_text("the admin password is missing or wrong").wait_for(timeout=30_000)
            assert page.get_by_text("No retraining has run yet.").is_visible()

            password_box.fill(admin_password())
            password_box.press("Enter")
            wait_until_idle(page)
            page.get_by_role("button", name="Retrain", exact=True).click()
            # The retraining runs in its own process, as the app's user like the server.
            uids = wait_for_retraining_process(podman, container)
            assert all(ids == {APP_UID} for ids in uids.values()), uids
            outcome = page.get_by_text(OUTCOME).first
            outcome.wait_for(timeout=1_500_000)
            status = OUTCOME.search(outcome.inner_text()).group(1)
            figures["retraining"] = status
            # Published, or refused by the promotion gate: either way the retraining ran to its end.
            assert status in {"published", "rejected"}, outcome.inner_text()

        # A new container on the same volumes has the correction and, if published, the new version.
        with running_app(podman, app_image.tag, log) as (container, url, seconds), chromium() as browser:
            figures["start_to_healthy_seconds"].append(round(seconds, 1))
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.goto(url)
            # The Retrain page counts all stored feedback (the live matrix only the served version's).
            page.get_by_role("link", name="Retrain").click()
            wait_for_metrics(page, {"Feedback samples": "1", "Corrections": "1"}, timeout_ms=120_000)
            page.get_by_text(OUTCOME).first.wait_for(timeout=60_000)  # and the job's outcome
            if status == "published":
                page.get_by_role("link", name="Draw").click()
                draw(page, strokes)
                wait_for_strokes(page, len(strokes), timeout_ms=90_000)
                page.get_by_text(f"model version {served + 1}").first.wait_for(timeout=30_000)
    finally:
        remove_leftovers(podman, app_image)
    report = PROJECT_ROOT / "reports" / "container-image.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
