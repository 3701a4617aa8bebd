"""Automatic retraining: start one by itself once enough new corrections are worth learning from.

In: the settings (`auto_retrain_after` corrections, at most once per `auto_retrain_interval_s`),
the feedback saved since the served version was published (its card's date), the stored
suspicion scores and admins' reviews, and the jobs table. Out: a started retraining (a `Job` of
kind "auto-retrain") or None, and a `Status` the Retrain page shows in one line.

What counts: a correction (the stored label differs from what the model predicted;
confirmations teach the model nothing new) saved after the served version was published, that
is not suspect (`suspicion.is_suspect` on its stored score) and not rejected by an admin. At
saving time a score is the model's alone (unchecked), which flags nothing; once a retraining has
checked a row against real handwriting, a suspect row stops counting.

Why off by default: a retraining takes the machine's cores for minutes, and what the app learns
should be an admin's choice unless they ask for it. Starting one is a server setting, not a
user's action, so no password is asked; it runs exactly as the Retrain button's (one at a time,
the same config), and the gate still decides whether the candidate is published. The interval
bounds how often a stream of corrections, or a candidate the gate keeps refusing, can occupy the
machine. Design notes: docs/automatic-retraining.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from digit_app import insights, model_store
from digit_app.config import Settings, get_settings, retrain_config_dict
from digit_app.feedback import FeedbackStore, Filters
from digit_app.jobs import Job, JobBusyError, JobStore
from digit_app.suspicion import REJECTED, is_suspect

AUTO_KIND = "auto-retrain"  # the job's kind: started by this module, not by an admin

log = logging.getLogger("digit_app")

Launch = Callable[[dict[str, Any], str], Job]  # (retraining config, job kind) -> the started job


@dataclass(frozen=True)
class Status:
    """What the Retrain page says about automatic retraining."""

    after: int  # corrections needed (0: off)
    interval_s: float
    counted: int  # new corrections since the served version that count
    served_version: int | None

    @property
    def enabled(self) -> bool:
        return self.after > 0

    def summary(self) -> str:
        if not self.enabled:
            return "Automatic retraining is off."
        since = "no version is served" if self.served_version is None else f"version {self.served_version}"
        return (
            f"Automatic retraining: after {self.after} new corrections, at most every "
            f"{self.interval_s / 60:g} min; {self.counted} so far since {since}."
        )


def _served(settings: Settings) -> tuple[int | None, float | None]:
    """The served version and when it was published (None: no card date, so every row is new)."""
    try:
        version = model_store.latest_version(settings.model_dir)
    except model_store.ModelStoreError:
        return None, None
    return version, insights.served_since(settings.model_dir)


def count_new(store: FeedbackStore, since: float | None, threshold: float) -> int:
    """Corrections saved at or after `since` that are neither suspect nor rejected."""
    rows = store.rows(Filters(corrections_only=True, since=since))
    return sum(
        1
        for r in rows
        if r.review != REJECTED and not is_suspect(r.suspicion, r.suspicion_checked, r.review, threshold)
    )


def _threshold() -> float:
    return float(retrain_config_dict()["suspect_threshold"])


def status(settings: Settings | None = None) -> Status:
    """The setting and the count so far (counted only when automatic retraining is on)."""
    settings = settings or get_settings()
    version, since = _served(settings)
    counted = 0
    if settings.auto_retrain_after > 0 and version is not None:
        counted = count_new(FeedbackStore(settings=settings), since, _threshold())
    return Status(settings.auto_retrain_after, max(0.0, settings.auto_retrain_interval_s), counted, version)


def maybe_start(
    settings: Settings | None = None, now: float | None = None, launch: Launch | None = None
) -> Job | None:
    """Start a retraining when it is on, enough corrections count, none is running and the last
    one (automatic or by hand, whatever its outcome) started more than the interval ago."""
    settings = settings or get_settings()
    if settings.auto_retrain_after <= 0:
        return None
    now = time.time() if now is None else now
    jobs = JobStore(settings=settings)
    if jobs.active() is not None:
        return None
    last = jobs.recent(1)
    if last and now - last[0].created_at < max(0.0, settings.auto_retrain_interval_s):
        return None
    version, since = _served(settings)
    if version is None:  # nothing to fine-tune
        return None
    counted = count_new(FeedbackStore(settings=settings), since, _threshold())
    if counted < settings.auto_retrain_after:
        return None
    start = launch or (lambda config, kind: jobs.launch(config, kind=kind))
    try:
        job = start(retrain_config_dict(None), AUTO_KIND)
    except JobBusyError:  # another session or replica started one a moment ago
        return None
    log.info(
        "automatic retraining: job %s started after %s new corrections since version %s",
        job.id,
        counted,
        version,
    )
    return job


def after_feedback_saved(settings: Settings | None = None) -> Job | None:
    """The trigger the pages call once feedback is stored: it can never undo or fail the save, so
    any error is logged and swallowed (the next save tries again)."""
    try:
        return maybe_start(settings)
    except Exception:  # noqa: BLE001 - saving feedback must not fail because of the trigger
        log.exception("automatic retraining could not be started")
        return None
