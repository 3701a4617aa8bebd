"""Admin actions are refused without the configured password, rate-limited, and never leak it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from digit_app import admin, db, model_store
from digit_app.feedback import FeedbackStore, Sample
from digit_app.jobs import JobBusyError, JobStore

PASSWORD = "c0rrect-Horse-battery"
WRONG = "c0rrect-Horse-battery!"  # shares a long prefix: a naive compare would leak timing


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Temporary database and model store with one fake version; no password; limiter reset."""
    for name in ("DIGIT_APP_ADMIN_PASSWORD", "DIGIT_APP_REQUIRE_ADMIN", "DIGIT_APP_RETRAIN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(admin, "_secrets_files", lambda: [tmp_path / "no-secrets.toml"])
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DIGIT_APP_MODEL_NAME", "mnist_cnn")
    monkeypatch.setenv("DIGIT_APP_DATABASE_URL", f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    version = tmp_path / "store" / "mnist_cnn" / "1"
    (version / model_store.EXTRA_DIR).mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"fake")
    (version / model_store.EXTRA_DIR / model_store.CARD_NAME).write_text(json.dumps({"version": 1}))
    admin.limiter.reset()
    yield tmp_path
    admin.limiter.reset()
    db.dispose_all()


@pytest.fixture
def rows(env: Path) -> list[int]:
    """Three stored corrections with their original images."""
    store = FeedbackStore()
    image = np.zeros((28, 28), np.float32)
    original = np.full((12, 12), 255, np.uint8)
    return store.add_many(
        [Sample(image28=image, label=d, predicted=(d + 1) % 10, original=original) for d in (1, 2, 3)]
    )


@pytest.fixture
def busy_job(env: Path) -> Iterator[int]:
    """A job holding the retraining lock, so start_retrain never launches a real training here."""
    job = JobStore().create({"placeholder": True})
    yield job.id
    JobStore().finish(job.id, "cancelled")


def _state(env: Path) -> dict:
    """Everything an admin action could change."""
    store = FeedbackStore()
    jobs = JobStore()
    feedback = [(r.id, r.label, r.updated_at, r.review) for r in store.rows()]
    originals = [store.original(r.id) is not None for r in store.rows()]
    with db.read_only(jobs.engine) as conn:
        job_rows = [tuple(r) for r in conn.execute(sa.select(db.jobs)).all()]
    model_dir = env / "store" / "mnist_cnn"
    return {
        "feedback": feedback,
        "originals": originals,
        "jobs": job_rows,
        "store": sorted(p.name for p in model_dir.iterdir()),
    }


def _actions(job_id: int, row_ids: list[int]) -> dict[str, Callable[[str | None], object]]:
    return {
        "start_retrain": lambda pw: admin.start_retrain(pw, {"epochs": 1}),
        "cancel_job": lambda pw: admin.cancel_job(job_id, pw),
        "rollback": lambda pw: admin.rollback(1, pw),
        "relabel_feedback": lambda pw: admin.relabel_feedback(row_ids[0], 7, pw),
        "delete_feedback": lambda pw: admin.delete_feedback(row_ids[:2], pw),
        "purge_images": lambda pw: admin.purge_images(pw),
        "review_feedback": lambda pw: admin.review_feedback(row_ids[0], "rejected", pw),
    }


ACTION_NAMES = [
    "start_retrain",
    "cancel_job",
    "rollback",
    "relabel_feedback",
    "delete_feedback",
    "purge_images",
    "review_feedback",
]


def test_no_password_configured_allows_actions(env: Path, rows: list[int], busy_job: int) -> None:
    assert admin.configured_password() is None
    assert not admin.password_required()
    admin.authorize(None)
    admin.relabel_feedback(rows[0], 9, None)
    assert FeedbackStore().rows()[-1].label == 9
    assert admin.delete_feedback([rows[1]], None) == 1
    assert admin.purge_images(None) == 2
    assert admin.rollback(1, None) == 2
    admin.cancel_job(busy_job, None)
    assert JobStore().get(busy_job).cancel_requested
    with pytest.raises(JobBusyError):  # past authorization; refused only because a job runs
        admin.start_retrain(None, {"epochs": 1})


def test_require_admin_without_password_refuses(
    env: Path, rows: list[int], busy_job: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGIT_APP_REQUIRE_ADMIN", "1")
    assert admin.password_required()
    before = _state(env)
    for name, action in _actions(busy_job, rows).items():
        for pw in (None, "", "anything"):
            with pytest.raises(admin.AdminError, match="DIGIT_APP_ADMIN_PASSWORD"):
                action(pw)
        assert _state(env) == before, name


@pytest.mark.parametrize("name", ACTION_NAMES)
def test_every_action_refuses_missing_or_wrong_password(
    env: Path, rows: list[int], busy_job: int, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    assert admin.password_required()
    action = _actions(busy_job, rows)[name]
    before = _state(env)
    for pw in (None, "", WRONG, PASSWORD.upper(), PASSWORD[:-1]):
        with pytest.raises(admin.AdminError) as info:
            action(pw)
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
        if pw:
            assert pw not in str(info.value)
    assert _state(env) == before
    assert not JobStore().get(busy_job).cancel_requested


def test_right_password_works(
    env: Path, rows: list[int], busy_job: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    admin.authorize(PASSWORD)
    admin.relabel_feedback(rows[0], 0, PASSWORD)
    assert {r.id: r.label for r in FeedbackStore().rows()}[rows[0]] == 0
    assert admin.delete_feedback([rows[2]], PASSWORD) == 1
    assert admin.purge_images(PASSWORD) == 2
    admin.review_feedback(rows[0], "accepted", PASSWORD)
    assert {r.id: r.review for r in FeedbackStore().rows()}[rows[0]] == "accepted"
    assert admin.rollback(1, PASSWORD) == 2
    assert model_store.read_card(env / "store" / "mnist_cnn", 2)["republished_from"] == 1
    admin.cancel_job(busy_job, PASSWORD)
    assert JobStore().get(busy_job).cancel_requested
    n_jobs = len(JobStore().recent())
    with pytest.raises(JobBusyError):  # authorized; the one lock is what stops it
        admin.start_retrain(PASSWORD, {"epochs": 1})
    assert len(JobStore().recent()) == n_jobs


def test_start_retrain_rejects_unknown_settings_after_authorizing(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    with pytest.raises(admin.AdminError):
        admin.start_retrain(WRONG, {"epoch": 1})
    with pytest.raises(ValueError, match="epoch"):
        admin.start_retrain(PASSWORD, {"epoch": 1})  # a typo, not a silent default
    assert JobStore().recent() == []


def test_rate_limit_locks_out_even_the_right_password(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    for _ in range(admin.MAX_FAILURES):
        with pytest.raises(admin.AdminError, match="wrong"):
            admin.authorize(WRONG, client="attacker")
    with pytest.raises(admin.AdminError, match="too many") as info:
        admin.authorize(PASSWORD, client="attacker")
    assert PASSWORD not in str(info.value)
    with pytest.raises(admin.AdminError, match="too many"):
        admin.purge_images(PASSWORD, client="attacker")
    admin.authorize(PASSWORD, client="admin")  # another client is not locked out by one attacker
    admin.limiter.reset()
    admin.authorize(PASSWORD, client="attacker")


def test_rate_limit_overall(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    # many clients (or one changing its id) trying a few each: the process-wide limit stops them
    for i in range(admin.MAX_FAILURES * 4):
        with pytest.raises(admin.AdminError, match="wrong"):
            admin.authorize(WRONG, client=f"c{i}")
    with pytest.raises(admin.AdminError, match="too many"):
        admin.authorize(PASSWORD, client="fresh")


def test_right_password_does_not_count_as_failure(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", PASSWORD)
    for _ in range(admin.MAX_FAILURES * 3):
        admin.authorize(PASSWORD, client="admin")
    for _ in range(admin.MAX_FAILURES - 1):
        with pytest.raises(admin.AdminError, match="wrong"):
            admin.authorize(WRONG, client="admin")
    admin.authorize(PASSWORD, client="admin")


def test_password_from_secrets_toml(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing, broken, good = env / "missing.toml", env / "broken.toml", env / "secrets.toml"
    broken.write_text("admin_password = [unterminated\n")
    good.write_text('other = 1\nadmin_password = "from-toml"\n')
    monkeypatch.setattr(admin, "_secrets_files", lambda: [missing, broken, good])
    assert admin.configured_password() == "from-toml"
    assert admin.password_required()
    with pytest.raises(admin.AdminError):
        admin.purge_images("wrong")
    assert admin.purge_images("from-toml") == 0

    monkeypatch.setenv("DIGIT_APP_ADMIN_PASSWORD", "from-env")  # the environment wins
    assert admin.configured_password() == "from-env"
    with pytest.raises(admin.AdminError):
        admin.authorize("from-toml")
    admin.authorize("from-env")


def test_secrets_toml_without_password(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = env / "secrets.toml"
    toml.write_text('admin_password = ""\n[other]\nkey = "x"\n')
    monkeypatch.setattr(admin, "_secrets_files", lambda: [toml])
    assert admin.configured_password() is None
    admin.authorize(None)
