"""The feedback store on a real SQLite file: round trips, validation, filters, migrations, concurrency."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from digit_app import db
from digit_app.config import PROJECT_ROOT
from digit_app.feedback import FeedbackError, FeedbackStore, Filters, Sample


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite database URL (engines are cached per URL, so each test gets its own)."""
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIGIT_APP_MODEL_STORE", str(tmp_path / "store"))
    value = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    monkeypatch.setenv("DIGIT_APP_DATABASE_URL", value)
    yield value
    db.dispose_all()


@pytest.fixture
def store(url: str) -> FeedbackStore:
    return FeedbackStore(url)


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28), dtype=np.float32)


def _sample(label: int = 3, predicted: int | None = 3, **kw: object) -> Sample:
    return Sample(image28=_image(label * 100 + (predicted or 0)), label=label, predicted=predicted, **kw)


def test_sample_round_trip_is_exact(store: FeedbackStore) -> None:
    image = _image(1)
    original = np.random.default_rng(2).integers(0, 256, size=(50, 37), dtype=np.uint8)
    probs = np.random.default_rng(3).dirichlet(np.ones(10)).tolist()
    sample = Sample(
        image28=image,
        label=7,
        predicted=1,
        probabilities=probs,
        model_version=4,
        source="upload",
        session_id="sess-1",
        original=original,
    )
    row_id = store.add(sample)

    [row] = store.rows()
    assert row.id == row_id
    assert (row.label, row.predicted, row.model_version, row.source, row.session_id) == (
        7,
        1,
        4,
        "upload",
        "sess-1",
    )
    assert row.is_correction
    assert row.updated_at is None
    assert abs(row.created_at - time.time()) < 60
    np.testing.assert_allclose(row.probabilities, probs, atol=1e-6)
    assert row.confidence == pytest.approx(max(probs))

    stored = store.images([row_id])[row_id]
    assert stored.dtype == np.float32 and stored.shape == (28, 28)
    assert np.array_equal(stored, image)  # bit-exact: retraining sees what the model saw
    assert np.array_equal(store.original(row_id), original)

    x, y, pred = store.training_set()
    assert x.shape == (1, 28, 28) and np.array_equal(x[0], image)
    assert y.tolist() == [7] and pred.tolist() == [1]


def test_optional_fields_and_28x28x1_input(store: FeedbackStore) -> None:
    row_id = store.add(Sample(image28=_image(5)[..., None], label=0))
    [row] = store.rows()
    assert row.predicted is None and row.probabilities is None and row.confidence is None
    assert not row.is_correction
    assert store.original(row_id) is None
    assert np.array_equal(store.images([row_id])[row_id], _image(5))
    assert store.images([]) == {}
    _x, _y, pred = store.training_set()
    assert pred.tolist() == [-1]


@pytest.mark.parametrize(
    "bad",
    [
        dict(label=10),
        dict(label=-1),
        dict(label="3"),
        dict(image28=np.zeros((27, 28), np.float32)),
        dict(image28=np.zeros((28, 28, 3), np.float32)),
        dict(image28=np.full((28, 28), np.nan, np.float32)),
        dict(image28=np.full((28, 28), np.inf, np.float32)),
        dict(source="email"),
        dict(probabilities=[0.1] * 9),
    ],
    ids=["label10", "label-1", "label-str", "shape27", "rgb", "nan", "inf", "source", "probs9"],
)
def test_invalid_samples_store_nothing(store: FeedbackStore, bad: dict) -> None:
    values = dict(image28=_image(0), label=3, predicted=3, source="canvas")
    values.update(bad)
    with pytest.raises(FeedbackError):
        store.add(Sample(**values))
    # one bad sample in a batch: none of the batch is stored
    with pytest.raises(FeedbackError):
        store.add_many([_sample(1, 1), Sample(**values), _sample(2, 2)])
    assert store.count() == 0
    assert store.rows() == []


def test_empty_store(store: FeedbackStore) -> None:
    assert store.count() == 0
    x, y, pred = store.training_set()
    assert x.shape == (0, 28, 28) and len(y) == 0 and len(pred) == 0
    assert store.confusion().sum() == 0
    assert store.model_versions() == []
    assert store.integrity_check() == "ok"


def test_filters(store: FeedbackStore) -> None:
    ids = store.add_many(
        [
            _sample(1, 1, model_version=1, source="canvas", session_id="a"),
            _sample(2, 5, model_version=1, source="upload", session_id="a"),
            _sample(3, 3, model_version=2, source="upload", session_id="b"),
            _sample(4, 9, model_version=2, source="cli", session_id="b"),
            _sample(5, None, model_version=None, source="canvas", session_id="c"),
        ]
    )
    assert len(set(ids)) == 5
    assert store.count() == 5
    assert [r.id for r in store.rows()] == sorted(ids, reverse=True)  # newest first
    assert [r.id for r in store.rows(limit=2, offset=1)] == sorted(ids, reverse=True)[1:3]

    def labels(f: Filters) -> list[int]:
        rows = store.rows(f)
        assert store.count(f) == len(rows)
        return sorted(r.label for r in rows)

    assert labels(Filters(model_versions=[1])) == [1, 2]
    assert labels(Filters(model_versions=[1, 2])) == [1, 2, 3, 4]
    assert labels(Filters(model_versions=[])) == []
    assert labels(Filters(sources=["upload"])) == [2, 3]
    assert labels(Filters(sources=["canvas", "cli"])) == [1, 4, 5]
    assert labels(Filters(session_id="b")) == [3, 4]
    assert labels(Filters(session_id="nobody")) == []
    assert labels(Filters(corrections_only=True)) == [2, 4]  # no prediction is not a correction
    assert labels(Filters(model_versions=[2], corrections_only=True)) == [4]
    assert labels(Filters(sources=["upload"], session_id="a")) == [2]
    assert labels(Filters(since=time.time() + 3600)) == []
    assert labels(Filters(since=0)) == [1, 2, 3, 4, 5]
    assert store.model_versions() == [1, 2]

    x, y, _pred = store.training_set(Filters(session_id="a"))
    assert x.shape == (2, 28, 28) and sorted(y.tolist()) == [1, 2]


def test_confusion_counts(store: FeedbackStore) -> None:
    store.add_many(
        [_sample(7, 1) for _ in range(3)]
        + [_sample(7, 7) for _ in range(2)]
        + [_sample(4, 9, model_version=2)]
        + [_sample(0, None)]  # no prediction: not in the matrix
    )
    m = store.confusion()
    assert m.shape == (10, 10) and m.dtype == np.int64
    assert m[7, 1] == 3 and m[7, 7] == 2 and m[4, 9] == 1
    assert m.sum() == 6
    m2 = store.confusion(Filters(model_versions=[2]))
    assert m2.sum() == 1 and m2[4, 9] == 1
    assert store.confusion(Filters(corrections_only=True)).trace() == 0


def test_relabel(store: FeedbackStore) -> None:
    row_id = store.add(_sample(7, 1))
    store.relabel(row_id, 1)  # the user was wrong: it was a 1 after all
    [row] = store.rows()
    assert row.label == 1 and row.updated_at is not None
    assert not row.is_correction
    assert store.confusion()[1, 1] == 1
    with pytest.raises(FeedbackError):
        store.relabel(row_id, 10)
    with pytest.raises(FeedbackError):
        store.relabel(row_id + 1000, 3)
    assert store.rows()[0].label == 1


def test_delete_delete_session_and_purge_images(store: FeedbackStore) -> None:
    original = np.full((10, 10), 200, np.uint8)
    ids = store.add_many(
        [_sample(d, d, session_id="a" if d < 5 else "b", original=original) for d in range(10)]
    )
    assert store.delete([ids[0], ids[9], 10_000]) == 2
    assert store.delete([]) == 0
    assert store.count() == 8

    assert store.delete_session("a") == 4
    assert store.delete_session("a") == 0
    assert {r.session_id for r in store.rows()} == {"b"}
    assert store.count() == 4

    remaining = [r.id for r in store.rows()]
    assert all(store.original(i) is not None for i in remaining)
    assert store.purge_images() == 4
    assert store.purge_images() == 0
    assert all(store.original(i) is None for i in remaining)
    # the 28x28 inputs retraining needs are kept
    assert len(store.images(remaining)) == 4
    assert store.integrity_check() == "ok"


def test_sqlite_uses_wal(store: FeedbackStore, tmp_path: Path) -> None:
    store.add(_sample())
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar()) >= 1000
    # and it persists in the file, for any other process that opens it
    import sqlite3

    with sqlite3.connect(tmp_path / "feedback.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_default_url_is_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIT_APP_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DIGIT_APP_DATABASE_URL", raising=False)
    try:
        store = FeedbackStore()
        store.add(_sample())
        assert (tmp_path / "state" / "feedback.sqlite3").is_file()
    finally:
        db.dispose_all()


def _schema(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return db.schema_version(conn)
    finally:
        engine.dispose()


def test_migration_from_schema_1_keeps_rows(url: str) -> None:
    engine = db._create(url)
    try:
        assert db.migrate(engine, target=1) == 1
        with engine.begin() as conn:
            assert db.schema_version(conn) == 1
            assert not sa.inspect(conn).has_table("jobs")
            conn.execute(
                sa.insert(db.feedback).values(
                    created_at=123.0,
                    session_id="old",
                    source="canvas",
                    label=4,
                    predicted=9,
                    image28=np.zeros((28, 28), "<f4").tobytes(),
                )
            )
    finally:
        engine.dispose()

    store = FeedbackStore(url)  # an app of this version opens the old file
    assert _schema(url) == db.SCHEMA_VERSION
    [row] = store.rows()
    assert (row.session_id, row.label, row.predicted, row.created_at) == ("old", 4, 9, 123.0)
    with db.read_only(store.engine) as conn:
        assert sa.inspect(conn).has_table("jobs")
        assert conn.execute(sa.select(db.locks.c.name, db.locks.c.holder)).all() == [("retrain", None)]
    # migrating again is a no-op
    assert db.migrate(store.engine) == db.SCHEMA_VERSION
    assert store.count() == 1


def test_newer_schema_is_refused(url: str) -> None:
    FeedbackStore(url).add(_sample())
    engine = db.engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(db.schema_meta)
            .where(db.schema_meta.c.key == "version")
            .values(value=str(db.SCHEMA_VERSION + 1))
        )
    db.dispose_all()
    with pytest.raises(db.SchemaError, match="newer"):
        FeedbackStore(url)
    assert _schema(url) == db.SCHEMA_VERSION + 1  # left as it was


# --- concurrency: several processes writing one SQLite file ---------------------------------

WRITERS = 8
ROWS_EACH = 250


# A writer process: waits for the start signal, then adds rows one at a time (each its own
# transaction) to a database file that does not exist yet, so the writers also race to create it.
_WRITER = """
import os, sys, time
import numpy as np
from digit_app.feedback import FeedbackStore, Sample
url, go, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
image = np.full((28, 28), worker / 10, np.float32)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
store = FeedbackStore(url)
for i in range(n):
    store.add(Sample(image28=image, label=i % 10, predicted=(i + worker) % 10, session_id=f"w{worker}"))
"""


def test_concurrent_writer_processes(url: str, tmp_path: Path) -> None:
    assert not Path(url.removeprefix("sqlite:///")).exists()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(go), str(w), str(ROWS_EACH)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * WRITERS
        go.touch()  # all of them start writing at once
        for p in procs:
            p.wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * WRITERS

    store = FeedbackStore(url)
    assert store.count() == WRITERS * ROWS_EACH
    rows = store.rows()
    assert len({r.id for r in rows}) == WRITERS * ROWS_EACH
    for w in range(WRITERS):
        assert store.count(Filters(session_id=f"w{w}")) == ROWS_EACH
    assert store.integrity_check() == "ok"
    assert _schema(url) == db.SCHEMA_VERSION
    with db.read_only(store.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.locks)).scalar() == 1


def test_export_zip_has_every_row_and_image(store: FeedbackStore) -> None:
    import csv
    import io
    import zipfile

    from digit_app.admin import export_zip
    from digit_app.feedback import decode_png

    ids = store.add_many(
        [_sample(label=d, predicted=(d + 1) % 10, original=np.full((9, 9), 200, np.uint8)) for d in range(4)]
    )
    store.add(_sample(label=5))  # no original image
    with zipfile.ZipFile(io.BytesIO(export_zip(store))) as zf:
        table = list(csv.DictReader(io.StringIO(zf.read("feedback.csv").decode())))
        names = set(zf.namelist())
        assert [int(r["id"]) for r in table] == sorted(ids + [ids[-1] + 1])
        assert {f"inputs/{i}.png" for i in ids} <= names
        assert {f"originals/{i}.png" for i in ids} <= names and f"originals/{ids[-1] + 1}.png" not in names
        original = decode_png(zf.read(f"originals/{ids[0]}.png"))
        assert original.shape == (9, 9) and int(original[0, 0]) == 200
