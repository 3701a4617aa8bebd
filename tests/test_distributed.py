"""`python -m training.train --distributed`: two workers on 127.0.0.1 under MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digit_app.config import PROJECT_ROOT
from digit_app.model_store import list_versions
from tests.browser_support import free_port
from tests.handwriting import handwriting_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EPOCHS = 2


def _run_workers(
    tmp_path: Path, out: Path, mnist_dir: Path, n: int = 2, timeout: float = 800
) -> tuple[list[int], list[str]]:
    """Start n workers of one cluster; returns their exit codes and logs.

    A worker that fails leaves the others blocked in a collective, so they are stopped then.
    """
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    workers = [f"127.0.0.1:{port}" for port in sorted(ports)]
    cmd = [sys.executable, "-m", "training.train", "--distributed", "--epochs", str(EPOCHS)]
    cmd += ["--settle-epochs", "1", "--limit", "768", "--batch-size", "64", "--cache-renders", "false"]
    cmd += ["--out", str(out)]
    procs = []
    for index in range(n):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
            "MNIST_DIR": str(mnist_dir),
            "HANDWRITING_DIR": str(handwriting_dir()),
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
        }
        with open(tmp_path / f"worker{index}.log", "wb") as log:
            procs.append(
                subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    logs = [(tmp_path / f"worker{i}.log").read_text(errors="replace") for i in range(n)]
    return [p.returncode for p in procs], logs


def test_two_workers_train_and_only_the_chief_publishes(tmp_path: Path, mnist_dir: Path) -> None:
    out = tmp_path / "store" / "mnist_cnn"
    codes, logs = _run_workers(tmp_path, out, mnist_dir)
    tails = [log[-3000:] for log in logs]
    assert codes == [0, 0], tails
    assert list_versions(out) == [1], tails
    assert "published" in logs[0] and "not the chief" in logs[1], tails
    assert "published" not in logs[1]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]

    # The weights (batch-norm statistics included) stay identical on both workers, so they
    # report the same metrics every epoch (val_loss differs if the statistics are not averaged).
    metrics = [re.findall(r"^epoch \d+/\d+: \d+ steps, \S+, (.*)$", log, re.M) for log in logs]
    assert len(metrics[0]) == EPOCHS and metrics[0] == metrics[1], metrics

    card = json.loads((out / "1" / "assets.extra" / "card.json").read_text())
    assert card["config"]["distributed"] is True
    assert sorted(card["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(values) == EPOCHS for values in card["history"].values())
    assert card["validation"]["best_accuracy"] == max(card["history"]["val_accuracy"])
    assert len(card["timings"]["epoch_end_seconds"]) == EPOCHS
    assert card["data"]["counts"]["train"] == 768
