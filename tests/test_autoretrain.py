"""Automatic retraining: off by default; starts once N new corrections that are neither suspect
nor rejected arrived since the served version; never while a job runs, never twice within the
interval; the Retrain page says where the count stands, and a saved correction triggers it
without a failing trigger ever losing the row.

A real SQLite file and a model store whose served version's card has a date the test chooses;
the retraining's process is replaced by recording the job (`JobStore.create`, a real row), or
by a stand-in for `subprocess.Popen` where the page launches it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from digit_app import autoretrain, db, jobs
from digit_app.config import PROJECT_ROOT, RetrainConfig, get_settings
from digit_app.feedback import FeedbackStore, Sample
from digit_app.jobs import Job, JobBusyError, JobStore
from digit_app.suspicion import ACCEPTED, REJECTED, Suspicion
from tests.test_pages import _drawn_digit, fake_canvas  # noqa: F401 - fixture
from tests.test_pages_feedback import env  # noqa: F401 - fixture

HOUR = 3600.0


def _serve(store_dir: Path, version: int, created: float) -> None:
    """A version folder as the model store lays it out, published at `created` (its card's date)."""
    folder = store_dir / "mnist_cnn" / str(version)
    (folder / "assets.extra").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    iso = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="seconds")
    (folder / "assets.extra" / "card.json").write_text(json.dumps({"created": iso}))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database and a store serving version 1, published a minute ago."""
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    for name in (
        "DIGIT_APP_DATABASE_URL",
        "DIGIT_APP_RETRAIN_CONFIG",
        "DIGIT_APP_AUTO_RETRAIN_AFTER",
        "DIGIT_APP_AUTO_RETRAIN_INTERVAL",
    ):
        monkeypatch.delenv(name, raising=False)
    _serve(tmp_path / "store", 1, time.time() - 60)
    yield tmp_path
    db.dispose_all()


def _on(monkeypatch: pytest.MonkeyPatch, after: int, interval: float = HOUR) -> None:
    monkeypatch.setenv("DIGIT_APP_AUTO_RETRAIN_AFTER", str(after))
    monkeypatch.setenv("DIGIT_APP_AUTO_RETRAIN_INTERVAL", str(interval))


def _corrections(n: int, seed: int = 0) -> list[int]:
    """n corrections (the model read label + 1) and one confirmation, which never counts."""
    rng = np.random.default_rng(seed)
    samples = [
        Sample(rng.random((28, 28), dtype=np.float32), i % 10, (i + 1) % 10, [0.1] * 10, 1, "canvas", "s")
        for i in range(n)
    ]
    samples.append(Sample(rng.random((28, 28), dtype=np.float32), 5, 5, [0.1] * 10, 1, "canvas", "s"))
    return FeedbackStore().add_many(samples)[:n]


class Recorder:
    """Starts jobs as `JobStore.launch` does, minus the training process: a real row and lock."""

    def __init__(self) -> None:
        self.started: list[Job] = []

    def __call__(self, config: dict[str, Any], kind: str) -> Job:
        job = JobStore().create(config, kind=kind)
        self.started.append(job)
        return job


def test_off_by_default(home: Path) -> None:
    _corrections(50)
    launch = Recorder()
    assert get_settings().auto_retrain_after == 0
    assert autoretrain.maybe_start(launch=launch) is None
    assert launch.started == [] and JobStore().recent() == []
    assert not autoretrain.status().enabled


def test_starts_at_n_new_corrections_not_below(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, 3)
    launch = Recorder()
    _corrections(2)
    assert autoretrain.maybe_start(launch=launch) is None
    assert autoretrain.status().counted == 2
    _corrections(1, seed=1)
    job = autoretrain.maybe_start(launch=launch)
    assert job is not None and launch.started == [job]
    stored = JobStore().get(job.id)
    assert stored is not None and stored.kind == autoretrain.AUTO_KIND and stored.active
    RetrainConfig.from_dict(stored.config)  # the job runner reads it as the Retrain button's


def test_suspect_and_rejected_corrections_do_not_count(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, 3)
    store = FeedbackStore()
    ids = _corrections(4)
    store.set_suspicion({ids[0]: Suspicion(0.99, "checked: suspect", True)}, 1)
    store.set_suspicion({ids[1]: Suspicion(0.99, "unchecked: the model alone", False)}, 1)  # counts
    store.review(ids[2], REJECTED)
    assert autoretrain.status().counted == 2
    assert autoretrain.maybe_start(launch=Recorder()) is None
    store.review(ids[0], ACCEPTED)  # an admin vouches for the suspect one: it counts again
    assert autoretrain.status().counted == 3
    assert autoretrain.maybe_start(launch=Recorder()) is not None


def test_corrections_before_the_served_version_do_not_count(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on(monkeypatch, 3)
    _corrections(5)
    _serve(home / "store", 2, time.time() + 2)  # published after them (the card has whole seconds)
    status = autoretrain.status()
    assert (status.served_version, status.counted) == (2, 0)
    assert autoretrain.maybe_start(launch=Recorder()) is None


def test_never_twice_within_the_interval(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, 2, interval=HOUR)
    _corrections(2)
    launch = Recorder()
    first = autoretrain.maybe_start(launch=launch)
    assert first is not None
    JobStore().finish(first.id, "rejected", message="the gate refused it")  # the count stays at 2
    now = time.time()
    assert autoretrain.maybe_start(now=now + HOUR - 60, launch=launch) is None
    second = autoretrain.maybe_start(now=now + HOUR + 60, launch=launch)
    assert second is not None and launch.started == [first, second]


def test_the_interval_counts_from_a_retraining_started_by_hand(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on(monkeypatch, 1, interval=HOUR)
    by_hand = JobStore().create({}, kind="retrain")
    JobStore().finish(by_hand.id, "published")
    _corrections(1)
    assert autoretrain.maybe_start(launch=Recorder()) is None
    assert autoretrain.maybe_start(now=by_hand.created_at + HOUR + 1, launch=Recorder()) is not None


def test_not_while_a_retraining_runs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, 1, interval=0)
    _corrections(3)
    running = JobStore().create({}, kind="retrain")
    assert autoretrain.maybe_start(launch=Recorder()) is None
    JobStore().finish(running.id, "cancelled")
    assert autoretrain.maybe_start(launch=Recorder()) is not None


def test_a_race_lost_to_another_session_is_not_an_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, 1)
    _corrections(1)

    def busy(config: dict[str, Any], kind: str) -> Job:
        raise JobBusyError("another replica took the lock first")

    assert autoretrain.maybe_start(launch=busy) is None


def test_the_retrain_page_says_where_the_count_stands(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = str(PROJECT_ROOT / "digit_app" / "pages" / "retrain.py")
    _corrections(2)
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception and not any("Automatic" in c.value for c in at.caption)
    _on(monkeypatch, 5, interval=1800)
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception
    line = "Automatic retraining: after 5 new corrections, at most every 30 min; 2 so far since version 1."
    assert line in [c.value for c in at.caption]


class FakeProcess:
    """What `JobStore.launch` needs of the training process it starts."""

    pid = 999_999_999  # no such process: the job is reaped as failed on the next read

    def wait(self) -> int:
        return 0


def test_saving_a_correction_on_the_draw_page_starts_it(
    env: Path,  # noqa: F811 - the fixture imported above
    fake_canvas: dict,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _on(monkeypatch, 1)
    commands: list[list[str]] = []
    real = jobs.subprocess.Popen

    def popen(cmd: list[str], **kw: Any) -> Any:  # only the retraining's process is stood in for
        if "training.retrain" not in cmd:
            return real(cmd, **kw)
        commands.append(cmd)
        return FakeProcess()

    monkeypatch.setattr(jobs.subprocess, "Popen", popen)
    fake_canvas["rgba"] = _drawn_digit("3")
    at = AppTest.from_file(str(PROJECT_ROOT / "digit_app" / "pages" / "draw.py"), default_timeout=60).run()
    at.text_input[0].input("8")
    at.button[0].click()
    at.run()
    assert not at.exception
    [job] = JobStore().recent()
    assert job.kind == autoretrain.AUTO_KIND
    assert any(f"automatic retraining job {job.id} started" in t.value for t in at.toast)
    assert commands == [[commands[0][0], "-m", "training.retrain", "--job", str(job.id)]]
    assert [(r.label, r.predicted) for r in FeedbackStore().rows()] == [(8, 3)]


def test_a_failing_trigger_never_loses_the_saved_correction(
    env: Path,  # noqa: F811 - the fixture imported above
    fake_canvas: dict,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _on(monkeypatch, 1)
    monkeypatch.setenv("DIGIT_APP_RETRAIN_CONFIG", "{not json")  # the trigger's config cannot be read
    fake_canvas["rgba"] = _drawn_digit("3")
    at = AppTest.from_file(str(PROJECT_ROOT / "digit_app" / "pages" / "draw.py"), default_timeout=60).run()
    at.text_input[0].input("8")
    at.button[0].click()
    at.run()
    assert not at.exception and any("correction" in s.value for s in at.success)
    assert [(r.label, r.predicted) for r in FeedbackStore().rows()] == [(8, 3)]
    assert JobStore().recent() == []
    assert "automatic retraining could not be started" in caplog.text
