"""Users' confirmations and corrections, stored in the shared database.

Every row keeps what retraining and the live confusion matrix need: the 28x28 model input
(exactly, as float32), the original drawing or crop (PNG), the predicted and the true
label, the probabilities, the model version, the source and an anonymous session id.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from PIL import Image

from digit_app import db, suspicion
from digit_app.config import Settings, get_settings

SOURCES = ("canvas", "upload", "cli")


class FeedbackError(ValueError):
    """A sample that cannot be stored (bad label, bad image, unknown row)."""


class StoreUnavailableError(FeedbackError):
    """The database is locked, full or unreachable; nothing was written."""


@dataclass
class Sample:
    """One confirmation (label == predicted) or correction, as a page hands it over."""

    image28: np.ndarray  # float32 (28, 28) in 0..1, the model input
    label: int  # the true digit
    predicted: int | None = None
    probabilities: Sequence[float] | None = None
    model_version: int | None = None
    source: str = "canvas"
    session_id: str = "anonymous"
    original: np.ndarray | None = None  # uint8 grayscale drawing or crop


@dataclass
class FeedbackRow:
    """A stored row without its images (cheap to list)."""

    id: int
    created_at: float
    session_id: str
    source: str
    model_version: int | None
    predicted: int | None
    label: int
    confidence: float | None
    probabilities: list[float] | None = field(default=None, repr=False)
    updated_at: float | None = None
    suspicion: float | None = None  # how likely the label is wrong (`digit_app.suspicion`)
    suspicion_reason: str | None = None
    suspicion_checked: bool | None = None  # against real handwriting (a retraining) or the model alone
    review: str | None = None  # an admin's "accepted" or "rejected"

    @property
    def is_correction(self) -> bool:
        return self.predicted is not None and self.predicted != self.label


def encode_image28(image: np.ndarray) -> bytes:
    arr = np.asarray(image, dtype="<f4")
    if arr.shape == (28, 28, 1):
        arr = arr[..., 0]
    if arr.shape != (28, 28) or not np.isfinite(arr).all():
        raise FeedbackError(f"the model input must be a finite 28x28 image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0).tobytes()


def decode_image28(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").reshape(28, 28).astype(np.float32)


def encode_png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(gray, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def decode_png(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("L"))


def _row_values(sample: Sample, now: float) -> dict:
    if not (isinstance(sample.label, int | np.integer) and 0 <= int(sample.label) <= 9):
        raise FeedbackError(f"the label must be a digit 0-9, got {sample.label!r}")
    if sample.source not in SOURCES:
        raise FeedbackError(f"unknown source {sample.source!r}")
    probs = None
    confidence = None
    first: suspicion.Suspicion | None = None
    if sample.probabilities is not None:
        p = [float(v) for v in sample.probabilities]
        if len(p) != 10:
            raise FeedbackError("probabilities must have ten values")
        probs = json.dumps([round(v, 6) for v in p])
        confidence = max(p)
        first = suspicion.score(np.array([p]), [int(sample.label)])[0]  # the model alone, for now
    return {
        "created_at": now,
        "session_id": str(sample.session_id)[:64],
        "source": sample.source,
        "model_version": None if sample.model_version is None else int(sample.model_version),
        "predicted": None if sample.predicted is None else int(sample.predicted),
        "label": int(sample.label),
        "confidence": confidence,
        "probabilities": probs,
        "image28": encode_image28(sample.image28),
        "original_png": None if sample.original is None else encode_png(sample.original),
        "suspicion": None if first is None else first.score,
        "suspicion_reason": None if first is None else first.reason,
        "suspicion_version": None
        if first is None or sample.model_version is None
        else int(sample.model_version),
        "suspicion_checked": None if first is None else False,
    }


def _row(r: sa.Row) -> FeedbackRow:
    return FeedbackRow(
        id=r.id,
        created_at=r.created_at,
        session_id=r.session_id,
        source=r.source,
        model_version=r.model_version,
        predicted=r.predicted,
        label=r.label,
        confidence=r.confidence,
        probabilities=json.loads(r.probabilities) if r.probabilities else None,
        updated_at=r.updated_at,
        suspicion=r.suspicion,
        suspicion_reason=r.suspicion_reason,
        suspicion_checked=r.suspicion_checked,
        review=r.review,
    )


_LIST_COLUMNS = [c for c in db.feedback.c if c.name not in {"image28", "original_png"}]


@dataclass
class Filters:
    """Which rows a view is about (None = all)."""

    model_versions: Sequence[int] | None = None
    sources: Sequence[str] | None = None
    session_id: str | None = None
    corrections_only: bool = False
    since: float | None = None  # created at or after (unix seconds)
    label: int | None = None
    predicted: int | None = None

    def where(self) -> list:
        t = db.feedback.c
        clauses = []
        if self.model_versions is not None:
            clauses.append(t.model_version.in_(list(self.model_versions)))
        if self.sources is not None:
            clauses.append(t.source.in_(list(self.sources)))
        if self.session_id is not None:
            clauses.append(t.session_id == self.session_id)
        if self.corrections_only:
            clauses.append(sa.and_(t.predicted.is_not(None), t.predicted != t.label))
        if self.since is not None:
            clauses.append(t.created_at >= self.since)
        if self.label is not None:
            clauses.append(t.label == int(self.label))
        if self.predicted is not None:
            clauses.append(t.predicted == int(self.predicted))
        return clauses


class FeedbackStore:
    """Add, list, relabel and delete feedback; all reads and writes go through here."""

    def __init__(self, url: str | None = None, settings: Settings | None = None) -> None:
        self.url = url or (settings or get_settings()).database
        self.engine = db.engine_for(self.url)

    # --- writes ---
    def add(self, sample: Sample) -> int:
        return self.add_many([sample])[0]

    def add_many(self, samples: Iterable[Sample]) -> list[int]:
        """Store samples in one transaction: all of them or none."""
        now = time.time()
        values = [_row_values(s, now) for s in samples]
        ids: list[int] = []
        try:
            with self.engine.begin() as conn:
                for v in values:
                    ids.append(int(conn.execute(sa.insert(db.feedback).values(**v)).inserted_primary_key[0]))
        except sa.exc.OperationalError as exc:  # locked, disk full, server gone: the transaction rolled back
            raise StoreUnavailableError(
                f"the feedback database is unavailable ({_reason(exc)}); nothing was saved, please try again"
            ) from exc
        return ids

    def relabel(self, row_id: int, label: int) -> None:
        if not 0 <= int(label) <= 9:
            raise FeedbackError(f"the label must be a digit 0-9, got {label!r}")
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.update(db.feedback)
                .where(db.feedback.c.id == int(row_id))
                .values(label=int(label), updated_at=time.time())
            ).rowcount
        if n != 1:
            raise FeedbackError(f"no feedback row {row_id}")

    def set_suspicion(self, scored: dict[int, suspicion.Suspicion], model_version: int | None) -> None:
        """Store each row's score and reason (a retraining, after asking the neighbours)."""
        with self.engine.begin() as conn:
            for row_id, s in scored.items():
                conn.execute(
                    sa.update(db.feedback)
                    .where(db.feedback.c.id == int(row_id))
                    .values(
                        suspicion=float(s.score),
                        suspicion_reason=s.reason,
                        suspicion_checked=bool(s.checked),
                        suspicion_version=model_version,
                    )
                )

    def review(self, row_id: int, decision: str | None) -> None:
        """An admin's decision on a row: "accepted" (learn from it), "rejected" (keep it, never
        learn from it), or None (back to the score's judgement)."""
        if decision is not None and decision not in suspicion.REVIEWS:
            raise FeedbackError(f"a review is one of {', '.join(suspicion.REVIEWS)}, got {decision!r}")
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.update(db.feedback)
                .where(db.feedback.c.id == int(row_id))
                .values(review=decision, reviewed_at=time.time())
            ).rowcount
        if n != 1:
            raise FeedbackError(f"no feedback row {row_id}")

    def delete(self, row_ids: Sequence[int]) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                sa.delete(db.feedback).where(db.feedback.c.id.in_([int(i) for i in row_ids]))
            ).rowcount

    def delete_session(self, session_id: str) -> int:
        """A user's right to take back everything their session stored."""
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(db.feedback).where(db.feedback.c.session_id == session_id)).rowcount

    def purge_images(self) -> int:
        """Drop every stored original image (keeps the 28x28 inputs retraining needs)."""
        with self.engine.begin() as conn:
            return conn.execute(
                sa.update(db.feedback)
                .where(db.feedback.c.original_png.is_not(None))
                .values(original_png=None)
            ).rowcount

    # --- reads ---
    def count(self, filters: Filters | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(db.feedback).where(*(filters or Filters()).where())
        with db.read_only(self.engine) as conn:
            return int(conn.execute(q).scalar() or 0)

    def rows(
        self, filters: Filters | None = None, limit: int | None = None, offset: int = 0
    ) -> list[FeedbackRow]:
        """Newest first, without images."""
        q = (
            sa.select(*_LIST_COLUMNS)
            .where(*(filters or Filters()).where())
            .order_by(db.feedback.c.id.desc())
            .offset(offset)
        )
        if limit is not None:
            q = q.limit(limit)
        with db.read_only(self.engine) as conn:
            return [_row(r) for r in conn.execute(q)]

    def images(self, row_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The 28x28 model inputs of some rows."""
        if not row_ids:
            return {}
        q = sa.select(db.feedback.c.id, db.feedback.c.image28).where(db.feedback.c.id.in_(list(row_ids)))
        with db.read_only(self.engine) as conn:
            return {r.id: decode_image28(r.image28) for r in conn.execute(q)}

    def original(self, row_id: int) -> np.ndarray | None:
        q = sa.select(db.feedback.c.original_png).where(db.feedback.c.id == int(row_id))
        with db.read_only(self.engine) as conn:
            blob = conn.execute(q).scalar()
        return None if blob is None else decode_png(blob)

    def training_set(self, filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images float32 [n,28,28], true labels, predicted labels or -1) for retraining."""
        x, y, pred, _, _ = self.training_rows(filters)
        return x, y, pred

    def training_rows(
        self, filters: Filters | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], list[str | None]]:
        """`training_set` with each row's id and review, oldest first."""
        t = db.feedback.c
        q = (
            sa.select(t.id, t.image28, t.label, t.predicted, t.review)
            .where(*(filters or Filters()).where())
            .order_by(t.id)
        )
        with db.read_only(self.engine) as conn:
            rows = conn.execute(q).all()
        x = np.stack([decode_image28(r.image28) for r in rows]) if rows else np.zeros((0, 28, 28), np.float32)
        y = np.array([r.label for r in rows], dtype=np.int64)
        pred = np.array([-1 if r.predicted is None else r.predicted for r in rows], dtype=np.int64)
        return x, y, pred, [int(r.id) for r in rows], [r.review for r in rows]

    def confusion(self, filters: Filters | None = None) -> np.ndarray:
        """10x10 counts, rows = true label, columns = predicted; counted in the database."""
        t = db.feedback.c
        q = (
            sa.select(t.label, t.predicted, sa.func.count())
            .where(t.predicted.is_not(None), *(filters or Filters()).where())
            .group_by(t.label, t.predicted)
        )
        matrix = np.zeros((10, 10), dtype=np.int64)
        with db.read_only(self.engine) as conn:
            for label, predicted, n in conn.execute(q):
                if 0 <= label <= 9 and 0 <= predicted <= 9:
                    matrix[label, predicted] += n
        return matrix

    def model_versions(self) -> list[int]:
        q = sa.select(db.feedback.c.model_version).distinct().where(db.feedback.c.model_version.is_not(None))
        with db.read_only(self.engine) as conn:
            return sorted(int(v) for (v,) in conn.execute(q))

    def integrity_check(self) -> str:
        """'ok', or what the database engine found wrong (SQLite's integrity_check)."""
        if self.engine.dialect.name != "sqlite":
            return "ok"
        with db.read_only(self.engine) as conn:
            return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar())


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
