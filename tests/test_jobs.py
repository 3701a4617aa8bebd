"""Retraining jobs: the single lock, racing processes, reaping dead or silent workers, cancel."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from digit_app import db
from digit_app.config import PROJECT_ROOT
from digit_app.jobs import JobBusyError, JobStore


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("DIGIT_APP_JOB_STALE_SECONDS", raising=False)
    value = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    monkeypatch.setenv("DIGIT_APP_DATABASE_URL", value)
    yield value
    db.dispose_all()


@pytest.fixture
def jobs(url: str) -> JobStore:
    return JobStore(url)


def _holder(jobs: JobStore) -> int | None:
    with db.read_only(jobs.engine) as conn:
        return conn.execute(sa.select(db.locks.c.holder).where(db.locks.c.name == "retrain")).scalar()


def test_create_takes_the_one_lock(jobs: JobStore) -> None:
    job = jobs.create({"epochs": 1})
    assert job.status == "starting" and job.active
    assert job.config == {"epochs": 1}
    assert _holder(jobs) == job.id
    assert jobs.active() is not None and jobs.active().id == job.id

    with pytest.raises(JobBusyError):
        jobs.create({"epochs": 2})
    with pytest.raises(JobBusyError):  # another store object (another session) is refused too
        JobStore(jobs.url).create({})
    assert [j.id for j in jobs.recent()] == [job.id]  # the refused attempts left no rows

    jobs.finish(job.id, "published", result={"version": 2}, message="done")
    done = jobs.get(job.id)
    assert done.status == "published" and not done.active
    assert done.result == {"version": 2} and done.message == "done" and done.finished_at
    assert _holder(jobs) is None
    assert jobs.active() is None

    second = jobs.create({})
    assert second.id != job.id and _holder(jobs) == second.id
    jobs.finish(second.id, "cancelled")


def test_get_unknown_job(jobs: JobStore) -> None:
    assert jobs.get(12345) is None


def test_heartbeat_reports_cancel(jobs: JobStore) -> None:
    job = jobs.create({})
    jobs.attach(job.id, log_path="/tmp/x.log")
    running = jobs.get(job.id)
    assert running.status == "running" and running.started_at and running.log_path == "/tmp/x.log"

    assert jobs.heartbeat(job.id, {"phase": "training", "step": 3}) is False
    assert jobs.get(job.id).progress == {"phase": "training", "step": 3}
    jobs.request_cancel(job.id)
    assert jobs.get(job.id).cancel_requested
    assert jobs.heartbeat(job.id, {"phase": "training", "step": 4}) is True
    assert jobs.heartbeat(job.id) is True
    assert jobs.get(job.id).progress == {"phase": "training", "step": 4}  # None keeps the last
    jobs.finish(job.id, "cancelled")
    assert jobs.get(job.id).status == "cancelled"


def test_cancel_of_a_finished_job_changes_nothing(jobs: JobStore) -> None:
    job = jobs.create({})
    jobs.finish(job.id, "rejected")
    jobs.request_cancel(job.id)
    done = jobs.get(job.id)
    assert done.status == "rejected" and not done.cancel_requested


def test_finish_does_not_release_another_jobs_lock(jobs: JobStore) -> None:
    old = jobs.create({})
    jobs.finish(old.id, "published")
    new = jobs.create({})
    # a late or repeated finish of the old job (or a stray worker) must not free the new one's lock
    jobs.finish(old.id, "failed", message="late")
    assert _holder(jobs) == new.id
    assert jobs.get(old.id).status == "published"  # a finished job's outcome is not overwritten
    assert jobs.get(old.id).message is None
    with pytest.raises(JobBusyError):
        jobs.create({})
    assert jobs.get(new.id).active
    jobs.finish(new.id, "failed")
    assert _holder(jobs) is None


def test_reap_job_whose_process_died(jobs: JobStore) -> None:
    job = jobs.create({})
    # a real worker process attaches itself to the job and then exits without finishing it
    code = f"from digit_app.jobs import JobStore; JobStore({jobs.url!r}).attach({job.id})"
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)
    with db.read_only(jobs.engine) as conn:
        pid = conn.execute(sa.select(db.jobs.c.pid).where(db.jobs.c.id == job.id)).scalar()
    assert pid is not None and pid != job.pid

    failed = jobs.get(job.id)  # reading reaps
    assert failed.status == "failed"
    assert "died" in failed.message and "nothing was published" in failed.message
    assert failed.finished_at is not None
    assert _holder(jobs) is None
    assert jobs.reap() == 0  # only once
    jobs.finish(jobs.create({}).id, "cancelled")  # a new job can start


def test_reap_job_with_stale_heartbeat(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_JOB_STALE_SECONDS", "0.3")
    jobs = JobStore(url)
    job = jobs.create({})  # its pid (this process) is alive: only the heartbeat can tell
    assert jobs.heartbeat(job.id, {"phase": "training"}) is False
    assert jobs.get(job.id).status == "starting"
    time.sleep(0.5)
    failed = jobs.get(job.id)
    assert failed.status == "failed" and "stopped reporting progress" in failed.message
    assert _holder(jobs) is None
    new = jobs.create({})
    assert new.active
    jobs.finish(new.id, "cancelled")


def test_live_job_with_fresh_heartbeat_is_not_reaped(jobs: JobStore) -> None:
    job = jobs.create({})
    jobs.attach(job.id)  # this process is alive and the heartbeat fresh
    assert jobs.reap() == 0
    assert jobs.get(job.id).status == "running"
    jobs.finish(job.id, "cancelled")


def test_job_on_another_host_is_judged_by_heartbeat_only(jobs: JobStore) -> None:
    job = jobs.create({})
    with jobs.engine.begin() as conn:  # a replica elsewhere: its pid means nothing here
        conn.execute(
            sa.update(db.jobs).where(db.jobs.c.id == job.id).values(host="other-host", pid=2**22 + 7)
        )
    assert jobs.reap() == 0
    with jobs.engine.begin() as conn:
        conn.execute(sa.update(db.jobs).where(db.jobs.c.id == job.id).values(heartbeat_at=time.time() - 3600))
    assert jobs.reap() == 1
    assert jobs.get(job.id).status == "failed" and _holder(jobs) is None


# A racer: waits for the start signal, tries to start a job, reports, then stays alive (the
# winner's job is tied to its pid) until the test closes its stdin.
_RACER = """
import os, sys, time
from digit_app.jobs import JobBusyError, JobStore
store = JobStore(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
try:
    print("won", store.create({"racer": True}).id, flush=True)
except JobBusyError:
    print("busy", flush=True)
sys.stdin.read()
"""


def test_racing_processes_exactly_one_wins(jobs: JobStore, tmp_path: Path) -> None:
    n = 3
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, jobs.url, str(go)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * n
        go.touch()  # all of them are polling for it now
        outcomes = [p.stdout.readline().split() for p in procs]
        winners = [int(o[1]) for o in outcomes if o and o[0] == "won"]
        assert len(winners) == 1, outcomes
        assert sum(o == ["busy"] for o in outcomes) == n - 1, outcomes
        assert _holder(jobs) == winners[0]
        assert [j.id for j in jobs.recent()] == winners
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            p.wait(timeout=60)
    assert [p.returncode for p in procs] == [0] * n
    # the winner's process is gone without finishing: the job is reaped and the lock freed
    assert jobs.get(winners[0]).status == "failed"
    assert _holder(jobs) is None
