"""Retraining jobs: one at a time across all sessions, processes and replicas.

A job is a row in the shared database and a separate OS process (`python -m
training.retrain --job N`), so it survives page reloads and closed tabs and never runs in
a Streamlit script. The worker reports progress through heartbeats; a job whose process
died (even `kill -9`) is found by its missing process or stale heartbeat, marked failed,
and its lock released, so a new one can start. The model store is never touched until a
candidate has passed the gate, and publishing is an atomic rename.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from digit_app import db
from digit_app.config import PROJECT_ROOT, Settings, get_settings

ACTIVE = ("starting", "running")
FINISHED = ("published", "rejected", "failed", "cancelled")
LOCK = "retrain"


class JobBusyError(RuntimeError):
    """Another retraining is running."""


@dataclass
class Job:
    id: int
    kind: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    host: str | None
    pid: int | None
    cancel_requested: bool
    config: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any]
    message: str | None
    log_path: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not Path(self.log_path).is_file():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def _job(r: sa.Row) -> Job:
    return Job(
        id=r.id,
        kind=r.kind,
        status=r.status,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        heartbeat_at=r.heartbeat_at,
        host=r.host,
        pid=r.pid,
        cancel_requested=bool(r.cancel_requested),
        config=json.loads(r.config or "{}"),
        progress=json.loads(r.progress or "{}"),
        result=json.loads(r.result or "{}"),
        message=r.message,
        log_path=r.log_path,
    )


def _process_alive(pid: int) -> bool:
    """Whether a process on this host is still running (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class JobStore:
    """Create, launch, watch, cancel and finish retraining jobs."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.database
        self.engine = db.engine_for(self.url)

    # --- reads ---
    def get(self, job_id: int) -> Job | None:
        self.reap()
        with db.read_only(self.engine) as conn:
            r = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == int(job_id))).first()
        return None if r is None else _job(r)

    def recent(self, limit: int = 20) -> list[Job]:
        self.reap()
        with db.read_only(self.engine) as conn:
            rows = conn.execute(sa.select(db.jobs).order_by(db.jobs.c.id.desc()).limit(limit)).all()
        return [_job(r) for r in rows]

    def active(self) -> Job | None:
        self.reap()
        with db.read_only(self.engine) as conn:
            r = conn.execute(
                sa.select(db.jobs).where(db.jobs.c.status.in_(ACTIVE)).order_by(db.jobs.c.id.desc())
            ).first()
        return None if r is None else _job(r)

    # --- lifecycle ---
    def create(self, config: dict[str, Any], kind: str = "retrain") -> Job:
        """Take the retraining lock and record a new job; JobBusyError if one is running."""
        self.reap()
        now = time.time()
        with self.engine.begin() as conn:
            took = conn.execute(
                sa.update(db.locks)
                .where(db.locks.c.name == LOCK, db.locks.c.holder.is_(None))
                .values(holder=-1, acquired_at=now)
            ).rowcount
            if took != 1:
                raise JobBusyError("a retraining is already running; wait for it to finish or cancel it")
            job_id = int(
                conn.execute(
                    sa.insert(db.jobs).values(
                        kind=kind,
                        status="starting",
                        created_at=now,
                        heartbeat_at=now,
                        host=socket.gethostname(),
                        pid=os.getpid(),  # the creator, until a worker takes over
                        cancel_requested=False,
                        config=json.dumps(config, default=str),
                    )
                ).inserted_primary_key[0]
            )
            conn.execute(sa.update(db.locks).where(db.locks.c.name == LOCK).values(holder=job_id))
        job = self.get(job_id)
        assert job is not None
        return job

    def launch(self, config: dict[str, Any], kind: str = "retrain") -> Job:
        """Create a job and start its worker process, detached from this one."""
        job = self.create(config, kind=kind)
        log_dir = self.settings.data_dir / "jobs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"job-{job.id}.log"
        env = dict(os.environ)
        env["DIGIT_APP_DATABASE_URL"] = self.url
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "training.retrain", "--job", str(job.id)],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # not killed with the app's process group
                )
        except OSError as exc:
            self.finish(job.id, "failed", message=f"could not start the training process: {exc}")
            raise
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it, so it never lingers as a zombie
        with self.engine.begin() as conn:
            conn.execute(sa.update(db.jobs).where(db.jobs.c.id == job.id).values(log_path=str(log_path)))
            conn.execute(  # unless the worker already attached itself
                sa.update(db.jobs)
                .where(db.jobs.c.id == job.id, db.jobs.c.status == "starting")
                .values(pid=proc.pid)
            )
        return self.get(job.id) or job

    def attach(self, job_id: int, log_path: str | None = None) -> None:
        """Called by the worker process: this pid now runs the job."""
        values: dict[str, Any] = {
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.time(),
            "heartbeat_at": time.time(),
        }
        if log_path:
            values["log_path"] = log_path
        with self.engine.begin() as conn:
            conn.execute(sa.update(db.jobs).where(db.jobs.c.id == int(job_id)).values(**values))

    def heartbeat(self, job_id: int, progress: dict[str, Any] | None = None) -> bool:
        """Record progress; returns True when a cancel was requested."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if progress is not None:
            values["progress"] = json.dumps(progress, default=float)
        with self.engine.begin() as conn:
            conn.execute(sa.update(db.jobs).where(db.jobs.c.id == int(job_id)).values(**values))
            return bool(
                conn.execute(
                    sa.select(db.jobs.c.cancel_requested).where(db.jobs.c.id == int(job_id))
                ).scalar()
            )

    def holds_lock(self, job_id: int) -> bool:
        """Whether this job is still the running retraining (checked again just before publishing)."""
        with db.read_only(self.engine) as conn:
            holder = conn.execute(sa.select(db.locks.c.holder).where(db.locks.c.name == LOCK)).scalar()
            status = conn.execute(sa.select(db.jobs.c.status).where(db.jobs.c.id == int(job_id))).scalar()
        return holder == int(job_id) and status in ACTIVE

    def request_cancel(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(db.jobs)
                .where(db.jobs.c.id == int(job_id), db.jobs.c.status.in_(ACTIVE))
                .values(cancel_requested=True)
            )

    def finish(
        self, job_id: int, status: str, result: dict[str, Any] | None = None, message: str | None = None
    ) -> None:
        """Record the outcome and release the lock (only if this job still holds it)."""
        assert status in FINISHED, status
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(db.jobs)
                .where(db.jobs.c.id == int(job_id), db.jobs.c.status.in_(ACTIVE))
                .values(
                    status=status,
                    finished_at=time.time(),
                    result=json.dumps(result or {}, default=str),
                    message=message,
                )
            )
            conn.execute(
                sa.update(db.locks)
                .where(db.locks.c.name == LOCK, db.locks.c.holder == int(job_id))
                .values(holder=None, acquired_at=None)
            )

    def reap(self) -> int:
        """Mark jobs whose process is gone (or silent too long) as failed; free the lock."""
        now = time.time()
        host = socket.gethostname()
        with db.read_only(self.engine) as conn:
            rows = conn.execute(sa.select(db.jobs).where(db.jobs.c.status.in_(ACTIVE))).all()
        dead = []
        for r in rows:
            stale = r.heartbeat_at is None or now - r.heartbeat_at > self.settings.job_stale_seconds
            gone = r.host == host and r.pid is not None and not _process_alive(r.pid)
            if stale or gone:
                dead.append((r.id, "its process died" if gone else "it stopped reporting progress"))
        for job_id, why in dead:
            self.finish(
                job_id,
                "failed",
                message=f"the training process ended unexpectedly ({why}); nothing was published",
            )
        return len(dead)
