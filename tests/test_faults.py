"""Faults: a locked database, a full disk, a writer killed mid-write, corrupt or half-copied model versions.

Each test injects the fault into real parts (a real SQLite file, real processes, a real
SavedModel store), checks that the problem is reported instead of raised, and ends with an
integrity check showing that no stored feedback was lost or corrupted.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from digit_app import db, predictor
from digit_app.feedback import FeedbackStore, Sample, StoreUnavailableError
from tests.store_support import SERVED_VERSION


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIGIT_APP_DB_BUSY_MS", "300")
    yield f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    db.dispose_all()


def _sample(i: int) -> Sample:
    return Sample(
        np.full((28, 28), (i % 97) / 97, np.float32), i % 10, (i + 1) % 10, [0.1] * 10, 1, "canvas", "f"
    )


def _intact(store: FeedbackStore, expected: int) -> None:
    assert store.integrity_check() == "ok"
    assert store.count() == expected
    rows = store.rows()
    images = store.images([r.id for r in rows])
    assert len(images) == expected and all(img.shape == (28, 28) for img in images.values())


def test_locked_database_is_reported_and_loses_nothing(url: str) -> None:
    store = FeedbackStore(url)
    store.add_many([_sample(i) for i in range(5)])
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        with pytest.raises(StoreUnavailableError, match="nothing was saved"):
            store.add(_sample(99))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.add(_sample(6))  # works again once the lock is gone
    _intact(store, 6)


def test_full_disk_is_reported_and_loses_nothing(url: str) -> None:
    store = FeedbackStore(url)
    store.add_many([_sample(i) for i in range(3)])
    path = url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()

    # Cap the file at its current size on every new connection: SQLite then fails with SQLITE_FULL,
    # exactly as on a full disk.
    db.dispose_all()
    engine = db.engine_for(url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA max_page_count={pages + 1}")
        conn.commit()

    @db.sa.event.listens_for(engine, "connect")
    def _cap(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.execute(f"PRAGMA max_page_count={pages + 1}")

    engine.dispose()
    big = FeedbackStore(url)
    with pytest.raises(StoreUnavailableError, match="full"):
        big.add_many([_sample(i) for i in range(400)])
    db.dispose_all()
    _intact(FeedbackStore(url), 3)


def _write_forever(url: str, ready: mp.Event) -> None:
    store = FeedbackStore(url)
    ready.set()
    i = 0
    while True:
        store.add_many([_sample(i), _sample(i + 1)])
        i += 2


def test_writer_killed_mid_write_leaves_only_whole_transactions(url: str) -> None:
    FeedbackStore(url)  # create the schema first
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_write_forever, args=(url, ready))
    proc.start()
    assert ready.wait(60)
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    db.dispose_all()
    store = FeedbackStore(url)
    n = store.count()
    assert n > 0 and n % 2 == 0  # every transaction wrote both rows or neither
    _intact(store, n)
    store.add(_sample(0))  # and the file is writable again
    assert store.count() == n + 1


@pytest.mark.parametrize("damage", ["corrupt", "half-copied"])
def test_bad_newest_version_falls_back_to_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    model_dir = tmp_path / "store" / "mnist_cnn"
    shutil.copytree(SERVED_VERSION, model_dir / "1")
    bad = model_dir / "2"
    if damage == "corrupt":
        shutil.copytree(SERVED_VERSION, bad)
        (bad / "saved_model.pb").write_bytes(b"\x00garbage" * 100)
    else:
        bad.mkdir()
        shutil.copy2(SERVED_VERSION / "saved_model.pb", bad / "saved_model.pb")  # variables/ never arrived
    monkeypatch.setattr(predictor, "_served", {})
    monkeypatch.setattr(predictor, "_broken", set())
    served = predictor.served_predictor(model_dir)
    assert served.version == 1
    assert predictor.broken_versions(model_dir) == [2]
    probs = served.predict_probabilities(np.zeros((1, 28, 28, 1), np.float32))
    assert probs.shape == (1, 10) and np.isclose(probs.sum(), 1, atol=1e-4)
