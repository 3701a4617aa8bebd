"""The shared database: one SQLAlchemy engine per URL and the schema with its migrations.

SQLite (a file under `data/`, in WAL mode) by default; PostgreSQL when
`DIGIT_APP_DATABASE_URL` says so, through the same code path, so several app replicas can
share the feedback and the retraining jobs.

Migrations are plain functions, applied in order inside one transaction that also bumps
`schema_meta.version`; a process that finds a newer schema than it knows refuses to write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

schema_meta = sa.Table(
    "schema_meta",
    metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),  # unix seconds
    sa.Column("updated_at", sa.Float, nullable=True),  # set when an admin relabels it
    sa.Column("session_id", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),  # canvas | upload | cli
    sa.Column("model_version", sa.Integer, nullable=True, index=True),
    sa.Column("predicted", sa.Integer, nullable=True),  # argmax of the model (None: no prediction)
    sa.Column("label", sa.Integer, nullable=False),  # the true label the user gave
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("probabilities", sa.Text, nullable=True),  # JSON list of ten floats
    sa.Column("image28", sa.LargeBinary, nullable=False),  # float32 28x28 model input, little-endian
    sa.Column("original_png", sa.LargeBinary, nullable=True),  # the drawing or the digit's crop, PNG
    # How likely the label is wrong (0..1, `digit_app.suspicion`), why, by which model version, and
    # whether real handwriting's neighbours were asked (a retraining does) or the model alone (saving).
    sa.Column("suspicion", sa.Float, nullable=True),
    sa.Column("suspicion_reason", sa.Text, nullable=True),
    sa.Column("suspicion_version", sa.Integer, nullable=True),
    sa.Column("suspicion_checked", sa.Boolean, nullable=True),
    sa.Column("review", sa.String(16), nullable=True),  # an admin's "accepted" or "rejected"
    sa.Column("reviewed_at", sa.Float, nullable=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # retrain | auto-retrain
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON
    sa.Column("progress", sa.Text, nullable=True),  # JSON: epoch, step, steps, elapsed, eta
    sa.Column("result", sa.Text, nullable=True),  # JSON: gate report, published version
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("log_path", sa.Text, nullable=True),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.Integer, nullable=True),  # a job id, or None when free
    sa.Column("acquired_at", sa.Float, nullable=True),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[feedback])


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[jobs, locks])
    conn.execute(sa.insert(locks).values(name="retrain", holder=None, acquired_at=None))


_V3_COLUMNS = (
    "suspicion",
    "suspicion_reason",
    "suspicion_version",
    "suspicion_checked",
    "review",
    "reviewed_at",
)


def _v3(conn: Connection) -> None:
    """Suspicion scores and admins' reviews on feedback rows (a database made by _v1 of this
    code has them already: _v1 creates the table as defined now)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("feedback")}
    for name in _V3_COLUMNS:
        if name not in have:
            column = feedback.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE feedback ADD COLUMN {name} {kind}")


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    """The database was written by a newer version of the app."""


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_setup(engine: Engine, busy_ms: int) -> None:
    """WAL, a generous busy timeout, and write transactions that take the lock up front.

    pysqlite's own transaction handling starts transactions lazily, which lets two writers
    deadlock on the read-to-write upgrade; so SQLAlchemy emits BEGIN itself: IMMEDIATE for
    writes (the default), DEFERRED for connections opened with `read_only()`.
    """

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get("read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def engine_for(url: str) -> Engine:
    """The process-wide engine for a URL, migrated to the current schema on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def _create(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        from digit_app.config import get_settings

        busy_ms = get_settings().db_busy_ms
        engine = sa.create_engine(url, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False})
        _sqlite_setup(engine, busy_ms)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def dispose_all() -> None:
    """Close every pooled connection (tests; before forking)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def read_only(engine: Engine) -> Connection:
    """A connection for reads that never waits for the SQLite write lock."""
    return engine.connect().execution_options(read_only=True)


def schema_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_meta"):
        return 0
    value = conn.execute(sa.select(schema_meta.c.value).where(schema_meta.c.key == "version")).scalar()
    return int(value) if value is not None else 0


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to `target`; safe when several processes start at once."""
    for attempt in range(10):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # one migrator at a time across replicas
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7420113)")
                metadata.create_all(conn, tables=[schema_meta])
                current = schema_version(conn)
                if current > SCHEMA_VERSION:
                    raise SchemaError(
                        f"the database has schema {current}, newer than this app's {SCHEMA_VERSION}; "
                        "upgrade the app"
                    )
                for version in range(current + 1, target + 1):
                    MIGRATIONS[version - 1](conn)
                if target > current:
                    if current == 0:
                        conn.execute(sa.insert(schema_meta).values(key="version", value=str(target)))
                    else:
                        conn.execute(
                            sa.update(schema_meta)
                            .where(schema_meta.c.key == "version")
                            .values(value=str(target))
                        )
                return max(current, target)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):  # a racing migrator, a busy file
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise SchemaError("could not migrate the database (other processes kept it busy)")
