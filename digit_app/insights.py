"""What the Insights and Retrain pages show, computed from the feedback store and model cards.

Kept free of Streamlit so the pages stay thin and the figures can be tested directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digit_app import model_store
from digit_app.config import RetrainConfig
from digit_app.feedback import FeedbackRow, FeedbackStore, Filters
from digit_app.suspicion import is_suspect


@dataclass
class FeedbackSummary:
    """The served model's record on users' feedback."""

    counts: np.ndarray  # 10x10, rows = true label, columns = predicted
    n: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def row_normalized(self) -> np.ndarray:
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape), where=totals > 0)


def summary(store: FeedbackStore, filters: Filters | None = None) -> FeedbackSummary:
    counts = store.confusion(filters)
    return FeedbackSummary(counts=counts, n=int(counts.sum()), correct=int(np.trace(counts)))


def matrix_frame(counts: np.ndarray, normalized: bool = False) -> pd.DataFrame:
    """Long format (true, predicted, value, count) for a heatmap."""
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    rows = []
    for t in range(counts.shape[0]):
        for p in range(counts.shape[1]):
            rows.append(
                {
                    "true": str(t),
                    "predicted": str(p),
                    "count": int(counts[t, p]),
                    "share": float(share[t, p]),
                    "value": float(share[t, p]) if normalized else float(counts[t, p]),
                }
            )
    return pd.DataFrame(rows)


@dataclass
class ConfusedPair:
    true: int
    predicted: int
    count: int
    examples: list[np.ndarray] = field(default_factory=list)  # 28x28 model inputs


def confused_pairs(
    store: FeedbackStore, filters: Filters | None = None, top: int = 5, examples: int = 6
) -> list[ConfusedPair]:
    """The most frequent (true, predicted) mistakes, with a few examples of each."""
    counts = store.confusion(filters)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1]
    base = filters or Filters()
    pairs = []
    for flat in order[:top]:
        t, p = divmod(int(flat), 10)
        if off[t, p] == 0:
            break
        f = Filters(**{**base.__dict__, "label": t, "predicted": p})
        ids = [r.id for r in store.rows(f, limit=examples)]
        images = store.images(ids)
        pairs.append(ConfusedPair(t, p, int(off[t, p]), [images[i] for i in ids if i in images]))
    return pairs


def test_confusion(model_dir: Path, version: int | None = None) -> np.ndarray | None:
    """The MNIST test-set confusion matrix from a version's model card, if it has one."""
    try:
        card = model_store.read_card(model_dir, version)
    except model_store.ModelStoreError:
        return None
    cm = (card.get("test") or {}).get("confusion_matrix")
    return None if cm is None else np.asarray(cm, dtype=np.int64)


def _created(card: dict[str, Any]) -> float | None:
    try:
        return dt.datetime.fromisoformat(card["created"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def versions_table(model_dir: Path) -> pd.DataFrame:
    """One row per published version, newest first: metrics, data counts, origin, date."""
    rows = []
    served = model_store.list_versions(model_dir)
    for v in reversed(served):
        try:
            card = model_store.read_card(model_dir, v)
        except (model_store.ModelStoreError, ValueError):
            card = {}
        test = card.get("test") or {}
        counts = (card.get("data") or {}).get("counts") or {}
        gate = (card.get("retrain") or {}).get("gate") or {}
        if card.get("republished_from"):
            origin = f"rollback to {card['republished_from']}"
        elif card.get("parent_version"):
            origin = f"retrained from {card['parent_version']}"
        else:
            origin = "trained on MNIST"
        rows.append(
            {
                "version": v,
                "served": v == served[-1],
                "created": (card.get("created") or "")[:19].replace("T", " "),
                "origin": origin,
                "MNIST test accuracy": test.get("accuracy"),
                "macro F1": (test.get("macro") or {}).get("f1"),
                "feedback samples": counts.get("feedback"),
                "held out as suspect": counts.get("held_out_suspect"),
                "accepted by an admin": counts.get("accepted"),
                "rejected by an admin": counts.get("rejected"),
                "learned feedback": (gate.get("feedback") or {}).get("candidate"),
                "training images": counts.get("train"),
            }
        )
    return pd.DataFrame(rows)


def served_since(model_dir: Path) -> float | None:
    """When the served version was published (its card's date), for "new since" counts."""
    try:
        return _created(model_store.read_card(model_dir))
    except model_store.ModelStoreError:
        return None


@dataclass
class CorrectionsOverview:
    total: int
    corrections: int
    new_since_served: int
    rows: list[FeedbackRow]  # one page, in review order
    thumbnails: dict[int, np.ndarray]
    suspects: int = 0  # of the listed rows (all pages): flagged and not yet reviewed
    listed: int = 0  # rows matching the filters (all pages)


def review_order(rows: list[FeedbackRow], threshold: float) -> list[FeedbackRow]:
    """Suspect corrections first (most suspect first), then the ones the served model was least
    sure about, then the rest: what a reviewer should look at first comes first."""

    def key(r: FeedbackRow) -> tuple:
        if is_suspect(r.suspicion, r.suspicion_checked, r.review, threshold):
            return (0, -float(r.suspicion or 0.0), -r.id)
        return (1, float(r.confidence if r.confidence is not None else 1.0), -r.id)

    return sorted(rows, key=key)


def corrections_overview(
    store: FeedbackStore,
    model_dir: Path,
    page: int = 0,
    per_page: int = 24,
    corrections_only: bool = True,
    threshold: float | None = None,
    label: int | None = None,
    sources: list[str] | None = None,
) -> CorrectionsOverview:
    """Counts and one page of stored feedback with thumbnails, in review order (`review_order`),
    filtered by the true digit and the source; `threshold` defaults to the retraining's."""
    threshold = RetrainConfig().suspect_threshold if threshold is None else threshold
    since = served_since(model_dir)
    listing = review_order(
        store.rows(Filters(corrections_only=corrections_only, label=label, sources=sources)), threshold
    )
    rows = listing[page * per_page : (page + 1) * per_page]
    return CorrectionsOverview(
        total=store.count(),
        corrections=store.count(Filters(corrections_only=True)),
        new_since_served=store.count(Filters(since=since)) if since else store.count(),
        rows=rows,
        thumbnails=store.images([r.id for r in rows]),
        suspects=sum(is_suspect(r.suspicion, r.suspicion_checked, r.review, threshold) for r in listing),
        listed=len(listing),
    )
