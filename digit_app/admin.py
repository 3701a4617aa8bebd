"""Admin actions and the password that guards them.

Retraining, cancelling, rollback, and relabelling or deleting stored feedback change what
every user gets, so when an admin password is configured each of these functions refuses
to act without it. The pages call exactly these functions; a direct call gets the same check.

The password comes from `DIGIT_APP_ADMIN_PASSWORD`, or `admin_password` in Streamlit's
`secrets.toml` (`.streamlit/secrets.toml` in the project or in the home folder). It is
compared in constant time, never logged, and failed attempts are rate-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import threading
import time
import tomllib
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from digit_app import model_store
from digit_app.config import PROJECT_ROOT, Settings, get_settings, retrain_config_dict
from digit_app.feedback import FeedbackStore, encode_png
from digit_app.jobs import Job, JobStore

MAX_FAILURES = 5  # failed attempts allowed per window before lock-out
WINDOW_SECONDS = 60.0


class AdminError(PermissionError):
    """The action needs the admin password (missing, wrong, rate-limited or not configured)."""


def _secrets_files() -> list[Path]:
    return [PROJECT_ROOT / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def configured_password() -> str | None:
    """The admin password, or None when none is configured."""
    value = os.environ.get("DIGIT_APP_ADMIN_PASSWORD", "")
    if value:
        return value
    for path in _secrets_files():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        secret = data.get("admin_password")
        if isinstance(secret, str) and secret:
            return secret
    return None


def password_required(settings: Settings | None = None) -> bool:
    return configured_password() is not None or (settings or get_settings()).require_admin


class _RateLimiter:
    """At most MAX_FAILURES wrong passwords per minute, per client and overall in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > WINDOW_SECONDS:
            q.popleft()
        return q

    def check(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (client, "*"):
                limit = MAX_FAILURES if key != "*" else MAX_FAILURES * 4
                q = self._recent(key, now)
                if len(q) >= limit:
                    wait = int(WINDOW_SECONDS - (now - q[0])) + 1
                    raise AdminError(f"too many wrong passwords; try again in {wait} s")

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            self._recent("*", now).append(now)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


limiter = _RateLimiter()


def authorize(password: str | None, client: str = "anonymous", settings: Settings | None = None) -> None:
    """Raise AdminError unless the action is allowed (no password configured, or the right one)."""
    expected = configured_password()
    if expected is None:
        if (settings or get_settings()).require_admin:
            raise AdminError("admin actions are disabled: set DIGIT_APP_ADMIN_PASSWORD to enable them")
        return
    limiter.check(client)
    given = (password or "").encode()
    # Compare digests so the time taken does not depend on where the strings differ or on their lengths.
    ok = hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected.encode()).digest())
    if not ok:
        limiter.failed(client)
        raise AdminError("the admin password is missing or wrong")


def start_retrain(
    password: str | None, overrides: dict[str, Any] | None = None, client: str = "anonymous"
) -> Job:
    """Start a retraining process (JobBusyError when one is running)."""
    settings = get_settings()
    authorize(password, client, settings)
    return JobStore(settings=settings).launch(retrain_config_dict(overrides))


def cancel_job(job_id: int, password: str | None, client: str = "anonymous") -> None:
    authorize(password, client)
    JobStore().request_cancel(job_id)


def rollback(version: int, password: str | None, client: str = "anonymous") -> int:
    """Re-publish an earlier version as the newest; returns the new version number."""
    settings = get_settings()
    authorize(password, client, settings)
    return model_store.republish(settings.model_dir, int(version), reason=f"rollback to version {version}")


def relabel_feedback(row_id: int, label: int, password: str | None, client: str = "anonymous") -> None:
    authorize(password, client)
    FeedbackStore().relabel(row_id, label)


def delete_feedback(row_ids: list[int], password: str | None, client: str = "anonymous") -> int:
    authorize(password, client)
    return FeedbackStore().delete(row_ids)


def export_feedback(password: str | None, client: str = "anonymous") -> bytes:
    """A zip of every stored row (CSV) and image (PNG)."""
    authorize(password, client)
    return export_zip(FeedbackStore())


def review_feedback(
    row_id: int, decision: str | None, password: str | None, client: str = "anonymous"
) -> None:
    """Accept a suspect correction (a retraining learns from it) or reject it (kept, never learned)."""
    authorize(password, client)
    FeedbackStore().review(row_id, decision)


def export_zip(store: FeedbackStore) -> bytes:
    """Every row as `feedback.csv` plus its images as PNG files, for an admin's export."""
    import csv
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        rows = store.rows()
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(
            ["id", "created_at", "session_id", "source", "model_version", "predicted", "label", "confidence"]
        )
        for r in reversed(rows):
            writer.writerow(
                [
                    r.id,
                    r.created_at,
                    r.session_id,
                    r.source,
                    r.model_version,
                    r.predicted,
                    r.label,
                    r.confidence,
                ]
            )
        zf.writestr("feedback.csv", table.getvalue())
        for start in range(0, len(rows), 500):
            ids = [r.id for r in rows[start : start + 500]]
            for row_id, img in store.images(ids).items():
                zf.writestr(f"inputs/{row_id}.png", encode_png(np.round(img * 255)))
            for row_id in ids:
                original = store.original(row_id)
                if original is not None:
                    zf.writestr(f"originals/{row_id}.png", encode_png(original))
    return buf.getvalue()


def purge_images(password: str | None, client: str = "anonymous") -> int:
    authorize(password, client)
    return FeedbackStore().purge_images()
