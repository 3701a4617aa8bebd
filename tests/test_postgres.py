"""The feedback store and the job lock on a real PostgreSQL server, through the same code path as SQLite."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator

import numpy as np
import pytest

from digit_app import db
from digit_app.feedback import FeedbackStore, Filters, Sample
from digit_app.jobs import JobBusyError, JobStore
from tests.pg_support import postgres_server

WRITERS, ROWS = 8, 250


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url
    db.dispose_all()


def _sample(i: int, session: str) -> Sample:
    img = np.full((28, 28), (i % 255) / 255.0, np.float32)
    return Sample(
        img,
        label=i % 10,
        predicted=(i * 7) % 10,
        probabilities=[0.1] * 10,
        model_version=1,
        source="canvas",
        session_id=session,
    )


def _write(url: str, writer: int, rows: int) -> None:
    store = FeedbackStore(url)
    for i in range(rows):
        store.add(_sample(i, f"writer-{writer}"))


def test_round_trip_and_filters(pg_url: str) -> None:
    store = FeedbackStore(pg_url)
    before = store.count()
    img = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    (row_id,) = store.add_many(
        [Sample(img, 4, 9, [0.05] * 9 + [0.55], 3, "upload", "pg-session", np.zeros((5, 7), np.uint8))]
    )
    assert store.count() == before + 1
    assert np.array_equal(store.images([row_id])[row_id], img)
    assert store.original(row_id).shape == (5, 7)
    assert store.count(Filters(model_versions=[3], sources=["upload"], corrections_only=True)) == 1
    assert store.confusion(Filters(session_id="pg-session"))[4, 9] == 1
    store.relabel(row_id, 9)
    assert store.rows(Filters(session_id="pg-session"))[0].label == 9
    assert store.delete_session("pg-session") == 1


def test_migrating_again_is_a_no_op(pg_url: str) -> None:
    engine = db.engine_for(pg_url)
    assert db.migrate(engine) == db.SCHEMA_VERSION
    with engine.connect() as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION


def test_concurrent_writer_processes_lose_nothing(pg_url: str) -> None:
    store = FeedbackStore(pg_url)
    before = store.count()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(pg_url, w, ROWS)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    assert store.count() - before == WRITERS * ROWS
    for w in range(WRITERS):
        assert store.count(Filters(session_id=f"writer-{w}")) == ROWS


def test_one_retraining_at_a_time(pg_url: str) -> None:
    jobs = JobStore(pg_url)
    job = jobs.create({"epochs": 1})
    with pytest.raises(JobBusyError):
        jobs.create({"epochs": 1})
    jobs.finish(job.id, "cancelled")
    second = jobs.create({})
    jobs.finish(second.id, "failed", message="test")
    assert jobs.get(second.id).status == "failed"


def test_a_database_from_before_suspicion_is_migrated_and_reviews_work(pg_url: str) -> None:
    """A schema-2 feedback table (no suspicion or review columns) on the server gets them; rows stay."""
    import sqlalchemy as sa

    from digit_app.suspicion import REJECTED, Suspicion

    admin_engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE before_suspicion")
    admin_engine.dispose()
    url = pg_url.rsplit("/", 1)[0] + "/before_suspicion"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE feedback (id SERIAL PRIMARY KEY, created_at FLOAT NOT NULL, updated_at FLOAT,"
            " session_id VARCHAR(64) NOT NULL, source VARCHAR(16) NOT NULL, model_version INTEGER,"
            " predicted INTEGER, label INTEGER NOT NULL, confidence FLOAT, probabilities TEXT,"
            " image28 BYTEA NOT NULL, original_png BYTEA)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE schema_meta (key VARCHAR(32) PRIMARY KEY, value VARCHAR(64) NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO schema_meta VALUES ('version', '1')")
        conn.execute(
            sa.text(
                "INSERT INTO feedback (created_at, session_id, source, label, predicted, image28)"
                " VALUES (1, 'old', 'canvas', 4, 9, :img)"
            ),
            {"img": np.zeros((28, 28), "<f4").tobytes()},
        )
    engine.dispose()
    store = FeedbackStore(url)
    [row] = store.rows()
    assert (row.label, row.predicted, row.suspicion, row.review) == (4, 9, None, None)
    store.set_suspicion({row.id: Suspicion(0.99, "a reason", True)}, 7)
    store.review(row.id, REJECTED)
    [row] = store.rows()
    assert (row.suspicion, row.suspicion_checked, row.review) == (0.99, True, REJECTED)
